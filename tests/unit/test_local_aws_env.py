"""`point_boto3_at`: what local mode sets in the environment before the proxy starts."""

from __future__ import annotations

import os

import pytest
from botocore.utils import get_environ_proxies

from emd.local.gateway import point_boto3_at

EMULATOR = "http://127.0.0.1:41234"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # point_boto3_at writes os.environ: every name it touches goes back after the test.
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
        "AWS_ENDPOINT_URL_SAGEMAKER",
        "EMD_USAGE_METRICS",
        "EMD_WAKE_POLL_SECONDS",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.setenv(name, os.environ.get(name, ""))
        monkeypatch.delenv(name)


def test_the_emulator_is_never_reached_through_a_web_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert get_environ_proxies(EMULATOR) != {}
    point_boto3_at(EMULATOR)
    assert get_environ_proxies(EMULATOR) == {}
    assert os.environ["NO_PROXY"] == "internal.example,127.0.0.1"
    point_boto3_at(EMULATOR)  # every local gateway a process starts calls it again
    assert os.environ["NO_PROXY"] == "internal.example,127.0.0.1"
    assert get_environ_proxies("http://example.com") != {}  # the rest still goes through it


def test_real_credentials_are_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-token")
    point_boto3_at(EMULATOR)
    assert "AWS_PROFILE" not in os.environ
    assert "AWS_SESSION_TOKEN" not in os.environ
    assert os.environ["AWS_ACCESS_KEY_ID"] == "local"
    assert os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == EMULATOR


def test_the_control_plane_of_scale_to_zero_is_sagemakers_endpoint_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp.example:3128")
    point_boto3_at(EMULATOR)
    assert "AWS_ENDPOINT_URL_SAGEMAKER" not in os.environ  # off unless there is one
    point_boto3_at(EMULATOR, "http://localhost:41235")
    assert os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] == "http://localhost:41235"
    assert get_environ_proxies("http://localhost:41235") == {}


def test_a_local_wake_is_polled_often_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At the deployed 5 s poll, a model that loads in a second sat idle long enough for
    # a short --scale-to-zero-after to unload it again before the held request saw it
    # up: the request waited out its whole hold (found by hand with `emd serve
    # --scale-to-zero-after 3`).
    point_boto3_at(EMULATOR)
    assert "EMD_WAKE_POLL_SECONDS" not in os.environ
    point_boto3_at(EMULATOR, "http://localhost:41235")
    assert float(os.environ["EMD_WAKE_POLL_SECONDS"]) < 1
    monkeypatch.setenv("EMD_WAKE_POLL_SECONDS", "2")
    point_boto3_at(EMULATOR, "http://localhost:41235")
    assert os.environ["EMD_WAKE_POLL_SECONDS"] == "2"

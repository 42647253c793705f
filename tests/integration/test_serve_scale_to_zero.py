"""`emd serve --scale-to-zero-after` as a user runs it: the banner says so, serve.json
names the control plane, an idle model unloads by itself and a wake through the
control plane (real boto3) loads it again. Without the flag nothing of this runs
(test_serve_cli.py)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from .test_serve_cli import start, wait_for_banner

COMPONENT = "emd-echo-local"


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "emd-config"


@pytest.fixture
def served_s2z(config_dir: Path) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    proc = start(
        config_dir, "--port", "0", "--scale-to-zero-after", "1", "--echo-load-seconds", "0.3"
    )
    try:
        wait_for_banner(proc)
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Scale to zero" in line:
                break
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def components(control_url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{control_url}/_emulator/components").json()["components"]


def test_serve_unloads_an_idle_model_and_wakes_it_through_the_control_plane(
    served_s2z: tuple[subprocess.Popen, list[str]],
    config_dir: Path,
) -> None:
    _, lines = served_s2z
    assert "Scale to zero: on; a model unloads after 1 s" in "".join(lines)
    state = json.loads((config_dir / "serve.json").read_text())
    control_url = state["control_url"]
    assert control_url.startswith("http://127.0.0.1:")

    wait_until(lambda: components(control_url)[0]["current_copy_count"] == 0)
    sagemaker = boto3.client(
        "sagemaker",
        endpoint_url=control_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    sagemaker.update_inference_component_runtime_config(
        InferenceComponentName=COMPONENT, DesiredRuntimeConfig={"CopyCount": 1}
    )
    wait_until(
        lambda: (
            sagemaker.describe_inference_component(InferenceComponentName=COMPONENT)[
                "InferenceComponentStatus"
            ]
            == "InService"
        )
    )
    row = components(control_url)[0]
    assert row["last_wake_seconds"] >= 0.3
    # The emulator of that process answers for the component it woke.
    answer = boto3.client(
        "sagemaker-runtime",
        endpoint_url=state["emulator_url"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).invoke_endpoint(
        EndpointName=COMPONENT,
        InferenceComponentName=COMPONENT,
        Body=json.dumps({"messages": [{"role": "user", "content": "awake"}]}),
        ContentType="application/json",
    )
    assert "awake" in answer["Body"].read().decode()

from __future__ import annotations

import json

import pytest

from emd_proxy.metrics import record_usage


def test_usage_becomes_one_emf_line_per_metric(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMD_USAGE_METRICS", "1")
    record_usage("team-a", "Qwen3-8B/dev", {"prompt_tokens": 12, "completion_tokens": 5})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_metric = {line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]: line for line in lines}
    assert set(by_metric) == {"PromptTokens", "CompletionTokens"}
    assert by_metric["PromptTokens"]["PromptTokens"] == [12.0]
    assert by_metric["CompletionTokens"]["key"] == "team-a"
    assert by_metric["CompletionTokens"]["model"] == "Qwen3-8B/dev"
    assert by_metric["CompletionTokens"]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["model", "key"]
    ]


def test_no_usage_or_disabled_prints_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMD_USAGE_METRICS", "1")
    record_usage("k", "m", None)
    monkeypatch.setenv("EMD_USAGE_METRICS", "0")
    record_usage("k", "m", {"prompt_tokens": 1, "completion_tokens": 1})
    assert capsys.readouterr().out == ""

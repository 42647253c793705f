"""Per-key, per-model token usage as CloudWatch metrics (Powertools, embedded metric
format: one JSON line per request, no API calls on the hot path). The key's name is a
dimension; the key itself never is."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "EMD")
_FIELDS = (("prompt_tokens", "PromptTokens"), ("completion_tokens", "CompletionTokens"))


def _off() -> bool:
    # Off where nothing collects the lines (`emd serve` sets EMD_USAGE_METRICS=0).
    return os.environ.get("EMD_USAGE_METRICS") == "0"


def record_wake_up(model: str) -> None:
    """This process started a wake of `model` (its inference component from zero)."""
    if _off():
        return
    with single_metric(name="WakeUps", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as m:
        m.add_dimension(name="model", value=model)


def record_wake_seconds(model: str, seconds: float) -> None:
    """From the first no-capacity error to the first call that went through."""
    if _off():
        return
    with single_metric(
        name="WakeSeconds", unit=MetricUnit.Seconds, value=seconds, namespace=NAMESPACE
    ) as m:
        m.add_dimension(name="model", value=model)


def record_usage(key_name: str, model: str, usage: dict[str, Any] | None) -> None:
    if not usage or _off():
        return
    for field, metric in _FIELDS:
        value = usage.get(field)
        if not isinstance(value, int):
            continue
        with single_metric(
            name=metric, unit=MetricUnit.Count, value=value, namespace=NAMESPACE
        ) as m:
            m.add_dimension(name="model", value=model)
            m.add_dimension(name="key", value=key_name)

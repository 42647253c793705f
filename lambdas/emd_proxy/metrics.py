"""Per-key, per-model token usage as CloudWatch metrics (Powertools, embedded metric
format: one JSON line per request, no API calls on the hot path). The key's name is a
dimension; the key itself never is."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "EMD")
_FIELDS = (("prompt_tokens", "PromptTokens"), ("completion_tokens", "CompletionTokens"))


def record_usage(key_name: str, model: str, usage: dict[str, Any] | None) -> None:
    # Off where nothing collects the lines (`emd serve` sets EMD_USAGE_METRICS=0).
    if not usage or os.environ.get("EMD_USAGE_METRICS") == "0":
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

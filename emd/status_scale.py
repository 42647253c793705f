"""Scale-to-zero facts for `emd status` (issue 18): an inference component's copy
counts, whether it is at zero, waking or serving, and its last measured wake.

On AWS a model stack with the output `InferenceComponentName` is such a model; its
component comes from DescribeInferenceComponent and its wake times from the
`WakeSeconds` metric the gateway emits. Every lookup here degrades to None plus a
note: status is for finding out what is wrong, so it never fails on a bonus field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .aws import Aws, aws_errors
from .errors import CliError

# The fields every model row of `emd status --json` carries (null where they do not
# apply), in this order after the older ones; `instance_count` is already there.
SCALE_JSON_FIELDS = (
    "inference_component",
    "copy_count",
    "desired_copy_count",
    "scale_state",
    "last_wake_seconds",
    "hourly_cost_now",
    "hourly_cost_full",
)
SCALED_TO_ZERO = "scaled_to_zero"
WAKING = "waking"
IN_SERVICE = "in_service"

# The gateway's Powertools metrics (lambdas/emd_proxy/metrics.py). The namespace is the
# stack's POWERTOOLS_METRICS_NAMESPACE, which the CDK app leaves at its default.
METRIC_NAMESPACE = "EMD"
WAKE_METRIC = "WakeSeconds"
WAKE_LOOKBACK = timedelta(days=7)
# 7 days in 600 s periods is 1008 datapoints, under GetMetricStatistics' 1440.
WAKE_PERIOD_SECONDS = 600
_BUSY_STATUSES = ("Creating", "Updating")


@dataclass
class Component:
    """What DescribeInferenceComponent (or the local control plane) says."""

    name: str
    status: str | None
    copy_count: int | None
    desired_copy_count: int | None
    failure_reason: str | None = None

    @property
    def state(self) -> str | None:
        return scale_state(self.status, self.copy_count, self.desired_copy_count)


def scale_state(
    status: str | None, current: int | None, desired: int | None, waking: bool = False
) -> str | None:
    """`scaled_to_zero` (nothing wanted, nothing running), `waking` (more copies wanted
    than run, or a component still being created or updated with none), else
    `in_service`; None when the counts are unknown."""
    if waking:
        return WAKING
    if current is None or desired is None:
        return None
    if desired == 0 and current == 0:
        return SCALED_TO_ZERO
    if desired > current or (status in _BUSY_STATUSES and current == 0):
        return WAKING
    return IN_SERVICE


def describe_component(aws: Aws, name: str) -> tuple[Component | None, str | None]:
    """The component, or None and a note saying why not."""
    try:
        with aws_errors():
            raw = aws.client("sagemaker").describe_inference_component(InferenceComponentName=name)
    except CliError as exc:
        return None, f"cannot read inference component {name}: {exc}"
    return component_from_aws(name, raw), None


def component_from_aws(name: str, raw: dict[str, Any]) -> Component:
    runtime = raw.get("RuntimeConfig") or {}
    return Component(
        name=str(raw.get("InferenceComponentName") or name),
        status=raw.get("InferenceComponentStatus"),
        copy_count=_int(runtime.get("CurrentCopyCount")),
        desired_copy_count=_int(runtime.get("DesiredCopyCount")),
        failure_reason=raw.get("FailureReason"),
    )


def last_wake_seconds(
    aws: Aws, model_ids: Iterable[str], now: datetime | None = None
) -> tuple[dict[str, float], list[str]]:
    """The latest `WakeSeconds` (the Maximum of its newest datapoint in the last 7
    days) of each model that woke in that time, and notes on what could not be read.

    One ListMetrics call finds which models have the metric and under exactly which
    dimensions (Powertools adds `service` to `model` when the Lambda sets
    POWERTOOLS_SERVICE_NAME, and GetMetricStatistics matches dimension sets exactly);
    then one GetMetricStatistics per such model."""
    wanted = set(model_ids)
    if not wanted:
        return {}, []
    cloudwatch = aws.client("cloudwatch")
    dimension_sets: dict[str, list[list[dict[str, str]]]] = {}
    try:
        with aws_errors():
            pages = cloudwatch.get_paginator("list_metrics").paginate(
                Namespace=METRIC_NAMESPACE, MetricName=WAKE_METRIC
            )
            for page in pages:
                for metric in page.get("Metrics", []):
                    dimensions = metric.get("Dimensions") or []
                    model = next((d["Value"] for d in dimensions if d["Name"] == "model"), None)
                    if model in wanted:
                        dimension_sets.setdefault(model, []).append(dimensions)
    except CliError as exc:
        return {}, [f"cannot read the {WAKE_METRIC} metric: {exc}"]
    end = now or datetime.now(UTC)
    found: dict[str, float] = {}
    notes: list[str] = []
    for model, sets in sorted(dimension_sets.items()):
        newest: tuple[datetime, float] | None = None
        for dimensions in sets:
            try:
                with aws_errors():
                    answer = cloudwatch.get_metric_statistics(
                        Namespace=METRIC_NAMESPACE,
                        MetricName=WAKE_METRIC,
                        Dimensions=dimensions,
                        StartTime=end - WAKE_LOOKBACK,
                        EndTime=end,
                        Period=WAKE_PERIOD_SECONDS,
                        Statistics=["Maximum"],
                    )
            except CliError as exc:
                notes.append(f"cannot read the {WAKE_METRIC} of {model}: {exc}")
                continue
            points = [newest, *_points(answer.get("Datapoints", []))]
            newest = max((p for p in points if p is not None), default=None)
        if newest is not None:
            found[model] = round(newest[1], 3)
    return found, notes


def full_scale_instances(
    max_instances: int | None, desired_copies: int | None, current_instances: int | None
) -> int:
    """Instances at full scale: the endpoint's managed-scaling maximum when SageMaker
    reports it, else one per wanted copy (a lone component), and at least one."""
    if max_instances:
        return max_instances
    return max(1, desired_copies or 0, current_instances or 0)


def _points(datapoints: list[dict[str, Any]]) -> list[tuple[datetime, float]]:
    return [
        (p["Timestamp"], float(p["Maximum"]))
        for p in datapoints
        if isinstance(p.get("Timestamp"), datetime) and isinstance(p.get("Maximum"), int | float)
    ]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

"""`emd status`: what is deployed under a prefix and whether it is ready.

Reads the API stack's and the model stacks' outputs (DESIGN.md "AWS shape"), the
secret's `default` key, and each endpoint's live state from DescribeEndpoint; for
scale-to-zero models also their inference component and last wake (status_scale.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from emd_proxy.registry import endpoint_name
from infra.prices import HOURS_PER_DAY, cost

from .aws import (
    Aws,
    Stack,
    api_stack_name,
    aws_errors,
    error_code,
    find_deployment,
    first_failure,
    model_stack_prefix,
)
from .errors import CliError
from .keys import default_key, mask
from .status_scale import (
    SCALE_JSON_FIELDS,
    WAKING,
    describe_component,
    full_scale_instances,
    last_wake_seconds,
)

MISSING = "Missing"  # not a SageMaker status: DescribeEndpoint found no such endpoint
SETTLED_ENDPOINT = ("InService", "Failed")
JSON_FIELDS = (
    "id",
    "families",
    "engine",
    "instance_type",
    "instance_count",
    "endpoint_name",
    "endpoint_status",
    "failure_reason",
    "stack_name",
    "stack_status",
    "created",
    "hourly_usd",
    *SCALE_JSON_FIELDS,
)


@dataclass
class ModelStatus:
    id: str | None  # None while the stack has no outputs yet (first creation)
    families: list[str]
    engine: str | None
    instance_type: str | None
    instance_count: int | None
    endpoint_name: str
    endpoint_status: str
    failure_reason: str | None
    stack_name: str
    stack_status: str
    created: str | None  # the endpoint's creation time, ISO 8601 UTC
    desired_count: int | None = None  # differs from instance_count while scaling
    stack_in_progress: bool = False
    # On-demand USD per hour of the running instances (infra/prices.py); None when the
    # price or the count is unknown, 0 when the endpoint does not exist.
    hourly_usd: float | None = None
    # Scale to zero (status_scale.py); None on models without an inference component,
    # except the costs, which every model has: now (as hourly_usd) and at full scale.
    inference_component: str | None = None
    copy_count: int | None = None
    desired_copy_count: int | None = None
    scale_state: str | None = None
    last_wake_seconds: float | None = None
    hourly_cost_now: float | None = None
    hourly_cost_full: float | None = None
    max_instance_count: int | None = None  # the variant's ManagedInstanceScaling maximum
    component_status: str | None = None  # InferenceComponentStatus
    component_failure: str | None = None


@dataclass
class StatusReport:
    prefix: str
    region: str
    base_url: str | None
    api_key: str | None
    api_key_secret_arn: str | None
    models: list[ModelStatus]
    api_stack_status: str | None = None
    problems: list[str] = field(default_factory=list)  # each makes the exit code 1
    warnings: list[str] = field(default_factory=list)

    def to_json(self, show_key: bool) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "region": self.region,
            "base_url": self.base_url,
            "api_key": self.api_key if show_key else mask(self.api_key),
            "api_key_secret_arn": self.api_key_secret_arn,
            "models": [{k: asdict(m)[k] for k in JSON_FIELDS} for m in self.models],
            "total_daily_usd": self.total_daily_usd,
        }

    @property
    def total_daily_usd(self) -> float | None:
        """What the endpoints cost per day as they run now; None if any price is unknown."""
        hourly = self._endpoint_hourly()
        if any(h is None for h in hourly):
            return None
        return round(sum(h for h in hourly if h is not None) * HOURS_PER_DAY, 2)

    @property
    def known_daily_usd(self) -> float:
        """The part of the daily cost whose prices are known."""
        return round(sum(h or 0.0 for h in self._endpoint_hourly()) * HOURS_PER_DAY, 2)

    def _endpoint_hourly(self) -> list[float | None]:
        # Components sharing an endpoint each show its cost; it is paid once.
        by_endpoint: dict[str, float | None] = {}
        for m in self.models:
            by_endpoint.setdefault(m.endpoint_name, m.hourly_usd)
        return list(by_endpoint.values())

    @property
    def settled(self) -> bool:
        """Nothing left to wait for: every endpoint is InService or Failed, or cannot
        change without a new deployment (missing after its stack finished), and no
        scale-to-zero model is waking."""
        if self.api_stack_status and self.api_stack_status.endswith("_IN_PROGRESS"):
            return False
        for model in self.models:
            if model.stack_in_progress or model.scale_state == WAKING:
                return False
            if model.endpoint_status not in (*SETTLED_ENDPOINT, MISSING):
                return False
        return True


def collect(aws: Aws, prefix: str) -> StatusReport:
    deployment = find_deployment(aws, prefix)
    if deployment.api is None and not deployment.models:
        raise CliError(
            f"no stacks named {api_stack_name(prefix)} or {prefix}-Model-* in {aws.region}: "
            "deploy with `cdk deploy --all` (or pass the right --prefix / --region)"
        )
    report = StatusReport(prefix, aws.region, None, None, None, [])
    api = deployment.api
    if api is None:
        report.problems.append(
            f"the API stack {api_stack_name(prefix)} was not found in {aws.region}: "
            "deploy it with `cdk deploy --all`"
        )
    else:
        report.api_stack_status = api.status
        report.base_url = api.outputs.get("BaseURL")
        report.api_key_secret_arn = api.outputs.get("ApiKeySecretArn")
        if api.failed:
            report.problems.append(stack_problem(aws, api))
        secret_id = report.api_key_secret_arn or api.outputs.get("ApiKeySecretName")
        if secret_id:
            report.api_key = _read_default_key(aws, secret_id, report.warnings)
    for stack in deployment.models:
        model = model_status(aws, stack, prefix)
        report.models.append(model)
        report.problems.extend(_model_problems(aws, stack, model))
        report.warnings.extend(_read_component(aws, model))
        report.problems.extend(_component_problems(model))
        _set_costs(model, aws.region)
    _read_wakes(aws, report)
    return report


def model_status(aws: Aws, stack: Stack, prefix: str) -> ModelStatus:
    model = _model_status(aws, stack, prefix)
    if model.endpoint_status == MISSING:
        model.hourly_usd = 0.0
    else:
        model.hourly_usd = cost(model.instance_type, model.instance_count, aws.region)
    return model


def _read_component(aws: Aws, model: ModelStatus) -> list[str]:
    """Copy counts and scale state of a scale-to-zero model; notes where unreadable.
    A missing endpoint has no component to ask about."""
    if model.inference_component is None or model.endpoint_status == MISSING:
        return []
    component, note = describe_component(aws, model.inference_component)
    if component is None:
        return [f"{model.id or model.stack_name}: {note}"]
    model.copy_count = component.copy_count
    model.desired_copy_count = component.desired_copy_count
    model.scale_state = component.state
    model.component_status = component.status
    model.component_failure = component.failure_reason
    return []


def _component_problems(model: ModelStatus) -> list[str]:
    if model.component_status != "Failed":
        return []
    reason = model.component_failure or "no reason given"
    label = model.id or model.stack_name
    return [f"{label}: inference component {model.inference_component} failed: {reason}"]


def _set_costs(model: ModelStatus, region: str) -> None:
    """Cost now is what runs (hourly_usd); at full scale, a scale-to-zero model's
    endpoint at its instance maximum, any other endpoint at the count it is heading
    for."""
    model.hourly_cost_now = model.hourly_usd
    if model.inference_component is not None:
        full = full_scale_instances(
            model.max_instance_count, model.desired_copy_count, model.instance_count
        )
    else:
        full = max(model.instance_count or 0, model.desired_count or 0) or None
    model.hourly_cost_full = cost(model.instance_type, full, region) if full else None


def _read_wakes(aws: Aws, report: StatusReport) -> None:
    ids = [m.id for m in report.models if m.inference_component and m.id]
    wakes, notes = last_wake_seconds(aws, ids)
    report.warnings.extend(notes)
    for model in report.models:
        if model.inference_component and model.id:
            model.last_wake_seconds = wakes.get(model.id)


def _model_status(aws: Aws, stack: Stack, prefix: str) -> ModelStatus:
    out = stack.outputs
    endpoint = out.get("EndpointName") or _endpoint_from_stack(stack.name, prefix)
    live = _describe_endpoint(aws, endpoint)
    variants = live.get("ProductionVariants") or []
    current = [v["CurrentInstanceCount"] for v in variants if "CurrentInstanceCount" in v]
    desired = [v["DesiredInstanceCount"] for v in variants if "DesiredInstanceCount" in v]
    maxima = [(v.get("ManagedInstanceScaling") or {}).get("MaxInstanceCount") for v in variants]
    created = live.get("CreationTime")
    return ModelStatus(
        id=out.get("ModelId"),
        families=[f.strip() for f in out.get("Families", "").split(",") if f.strip()],
        engine=out.get("Engine"),
        instance_type=out.get("InstanceType"),
        instance_count=sum(current) if current else None,
        endpoint_name=endpoint,
        endpoint_status=live.get("EndpointStatus", MISSING),
        failure_reason=live.get("FailureReason"),
        stack_name=stack.name,
        stack_status=stack.status,
        created=_iso(created) if isinstance(created, datetime) else None,
        desired_count=sum(desired) if desired else None,
        stack_in_progress=stack.in_progress,
        inference_component=out.get("InferenceComponentName") or None,
        max_instance_count=sum(m for m in maxima if m) or None,
    )


def stack_problem(aws: Aws, stack: Stack) -> str:
    message = f"stack {stack.name} is {stack.status}"
    if stack.reason:
        message += f": {stack.reason}"
    try:
        cause = first_failure(aws, stack.name)
    except CliError:
        cause = None  # the events are a bonus; the status itself is the problem
    if cause:
        message += f"; first failure: {cause}"
    return message


def watch(
    aws: Aws,
    prefix: str,
    interval: float,
    on_update: Callable[[StatusReport], None],
    sleep: Callable[[float], None] = time.sleep,
) -> StatusReport:
    """Polls until the report is settled; each report goes to `on_update`."""
    while True:
        report = collect(aws, prefix)
        on_update(report)
        if report.settled:
            return report
        sleep(interval)


def dumps(report: StatusReport, show_key: bool) -> str:
    return json.dumps(report.to_json(show_key), indent=2)


def _model_problems(aws: Aws, stack: Stack, model: ModelStatus) -> list[str]:
    label = model.id or stack.name
    if stack.failed:
        return [f"{label}: {stack_problem(aws, stack)}"]
    if model.endpoint_status == "Failed":
        reason = model.failure_reason or "no reason given"
        return [f"{label}: endpoint {model.endpoint_name} failed: {reason}"]
    if model.endpoint_status == MISSING and not stack.in_progress:
        return [
            f"{label}: endpoint {model.endpoint_name} does not exist although stack "
            f"{stack.name} is {stack.status}: redeploy with `cdk deploy {stack.name}`"
        ]
    return []


def _describe_endpoint(aws: Aws, name: str) -> dict[str, Any]:
    try:
        with aws_errors():
            return dict(aws.client("sagemaker").describe_endpoint(EndpointName=name))
    except CliError as exc:
        # SageMaker answers "Could not find endpoint" with a ValidationException.
        if error_code(exc) in ("ValidationException", "ValidationError"):
            return {}
        raise


def _read_default_key(aws: Aws, secret_id: str, warnings: list[str]) -> str | None:
    """The key is a convenience: without it (no permission, bad JSON) status still works."""
    try:
        with aws_errors():
            value = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
        document = json.loads(value.get("SecretString") or "{}")
    except CliError as exc:
        warnings.append(f"cannot read the API key from {secret_id}: {exc}")
        return None
    except ValueError:
        warnings.append(f"the secret {secret_id} does not hold JSON")
        return None
    key = default_key(document) if isinstance(document, dict) else None
    if key is None:
        warnings.append(f"the secret {secret_id} has no `default` key (see `emd keys list`)")
    return key


def _endpoint_from_stack(stack_name: str, prefix: str) -> str:
    """Before its outputs exist, a model stack's endpoint follows from its name:
    `<prefix>-Model-<slug>` serves `<prefix>-<slug>` lowercased (both slugged the
    same way, so a cut name gets the same hash)."""
    slug = stack_name.removeprefix(model_stack_prefix(prefix))
    return endpoint_name(slug, "", prefix=prefix)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

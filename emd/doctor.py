"""`emd doctor`: a read-only preflight of `cdk deploy --all` for the context in cdk.json.

It reads the context the way app.py does (infra/config.py's loader, with `-c key=value`
overrides as the CDK CLI passes them: strings) and asks AWS, without changing
anything, what would stop the deployment or surprise its owner:

- credentials (STS GetCallerIdentity), the region, and the CDK bootstrap stack;
- each instance type's SageMaker "<type> for endpoint usage" quota against the
  instances the context may run (`max_capacity`, summed over the models sharing it;
  a shared endpoint's `max_instances` once, whatever its members);
- each serving image in the region (the catalog's account map, then ECR
  BatchGetImage in the publishing account) and the Lambda Web Adapter layer
  (GetLayerVersion on the layer's ARN, the read GetLayerVersionByArn also makes);
- collisions with what is already there: stacks of the same names that are not this
  deployment's, endpoints of the names this context would create that no stack of
  ours owns, and endpoint log groups retained by an earlier deployment;
- what the endpoints will cost per hour and per day (infra/prices.py; a shared
  endpoint's instances once).

Every check is `ok`, `warning` or `blocker` with a one-line fix; any blocker makes
the exit code 1. A check that cannot be made (no permission) is a warning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from infra.config import ConfigError, DeployConfig, ModelDeployment, SharedEndpoint, load
from infra.images import CatalogError, ContainerImage
from infra.prices import HOURS_PER_DAY, PRICES_AS_OF, PRICES_SOURCE, hourly_price

from .aws import Aws, Stack, aws_errors, describe_stack, error_code, find_deployment
from .errors import CliError

Status = Literal["ok", "warning", "blocker"]
QUOTA_CONSOLE = "https://console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas"
DEFAULT_TOOLKIT_STACK = "CDKToolkit"
DEFAULT_QUALIFIER = "hnb659fds"
QUALIFIER_CONTEXT = "@aws-cdk/core:bootstrapQualifier"
# Stacks this project made say so in their description (infra/stacks/*).
OWN_DESCRIPTION = "EMD gateway"
_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
# Stack states `cdk deploy` cannot move on from by itself.
_STUCK = ("UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "ROLLBACK_FAILED", "DELETE_IN_PROGRESS")


@dataclass
class Check:
    id: str  # stable key for scripts, e.g. "quota:ml.g5.xlarge"
    check: str  # what was checked, for the table
    status: Status
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix,
            **self.data,
        }


@dataclass
class DoctorReport:
    prefix: str | None = None
    region: str | None = None
    account: str | None = None
    checks: list[Check] = field(default_factory=list)
    cost: dict[str, Any] | None = None

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status == status)

    @property
    def ok(self) -> bool:
        return self.count("blocker") == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "region": self.region,
            "account": self.account,
            "ok": self.ok,
            "blockers": self.count("blocker"),
            "warnings": self.count("warning"),
            "checks": [c.to_json() for c in self.checks],
            "cost": self.cost,
        }


@dataclass(frozen=True)
class Context:
    """cdk.json's context with the `-c` overrides, and the CLI settings beside it."""

    values: dict[str, Any]
    toolkit_stack_name: str

    @property
    def qualifier(self) -> str:
        return str(self.values.get(QUALIFIER_CONTEXT) or DEFAULT_QUALIFIER)


def read_context(
    app_dir: Path, overrides: list[str] | None, toolkit_stack_name: str | None = None
) -> Context:
    """The context `cdk deploy` would see: cdk.json's `context`, then `-c key=value`
    (a value stays a string, as the CDK CLI passes it; infra/config.py parses JSON)."""
    path = app_dir / "cdk.json"
    document: dict[str, Any] = {}
    if path.exists():
        try:
            document = json.loads(path.read_text())
        except ValueError as exc:
            raise CliError(f"{path} is not valid JSON: {exc}") from exc
    values = dict(document.get("context") or {})
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"-c {item!r}: expected key=value, e.g. -c emd:prefix=EMD")
        values[key.strip()] = value
    name = toolkit_stack_name or document.get("toolkitStackName") or DEFAULT_TOOLKIT_STACK
    return Context(values, str(name))


def diagnose(context: Context, make_aws: Callable[[], Aws]) -> DoctorReport:
    """Every check, in the order a deploy meets them; AWS is only read."""
    report = DoctorReport()
    try:
        config = load(context.values.get)
    except (ConfigError, CatalogError) as exc:
        report.add(
            Check("context", "context (cdk.json, -c)", "blocker", str(exc), "fix the context")
        )
        return report
    report.prefix = config.prefix
    n = len(config.models)
    report.add(
        Check(
            "context",
            "context (cdk.json, -c)",
            "ok",
            f"prefix {config.prefix}, {n} model{'s' if n != 1 else ''}"
            + (f": {', '.join(m.public_id for m in config.models)}" if n else " (the API only)"),
        )
    )
    try:
        aws = make_aws()
    except CliError as exc:
        report.add(Check("region", "region", "blocker", str(exc), "pass --region"))
        return report
    report.region = aws.region
    if not _credentials(aws, report):
        return report
    _region(aws, report)
    _bootstrap(aws, context, report)
    _images(aws, config, report)
    _adapter_layer(aws, report)
    _quotas(aws, config, report)
    _collisions(aws, config, report)
    report.cost = _cost(config, aws.region, report)
    return report


# --- account and region --------------------------------------------------------------


def _credentials(aws: Aws, report: DoctorReport) -> bool:
    try:
        with aws_errors():
            identity = aws.client("sts").get_caller_identity()
    except CliError as exc:
        report.add(
            Check(
                "credentials",
                "credentials",
                "blocker",
                str(exc),
                "run `aws configure` / `aws sso login`, or pass --profile",
            )
        )
        return False
    report.account = str(identity.get("Account"))
    report.add(
        Check(
            "credentials",
            "credentials",
            "ok",
            f"account {report.account} as {identity.get('Arn')}",
            data={"account": report.account, "arn": identity.get("Arn")},
        )
    )
    return True


def _region(aws: Aws, report: DoctorReport) -> None:
    partition = _partition(aws)
    report.add(
        Check(
            "region",
            "region",
            "ok",
            f"{aws.region} (partition {partition})",
            data={"region": aws.region, "partition": partition},
        )
    )


def _partition(aws: Aws) -> str:
    try:
        return str(aws.session.get_partition_for_region(aws.region))
    except Exception:  # noqa: BLE001 - an unknown region: botocore's own default
        return "aws"


def _bootstrap(aws: Aws, context: Context, report: DoctorReport) -> None:
    name = context.toolkit_stack_name
    fix = f"npx cdk bootstrap aws://{report.account}/{aws.region}"
    if context.qualifier != DEFAULT_QUALIFIER:
        fix += f" --qualifier {context.qualifier}"
    if name != DEFAULT_TOOLKIT_STACK:
        fix += f" --toolkit-stack-name {name}"
    check = Check("bootstrap", f"CDK bootstrap ({name})", "ok", "", fix=None)
    try:
        with aws_errors():
            stacks = aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except CliError as exc:
        if error_code(exc) == "ValidationError":  # "Stack with id X does not exist"
            check.status, check.fix = "blocker", fix
            check.detail = (
                f"no stack {name} in {aws.region}: this account and region are not bootstrapped"
            )
        else:
            check.status, check.detail = "warning", f"could not read stack {name}: {exc}"
        report.add(check)
        return
    raw = stacks[0]
    status = raw.get("StackStatus", "UNKNOWN")
    outputs = {o["OutputKey"]: o.get("OutputValue") for o in raw.get("Outputs") or []}
    parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in raw.get("Parameters") or []}
    version = outputs.get("BootstrapVersion")
    check.data = {"stack_status": status, "bootstrap_version": version}
    qualifier = parameters.get("Qualifier")
    if status.endswith("_FAILED") or status in ("ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS"):
        check.status, check.fix = "blocker", fix
        check.detail = f"stack {name} is {status}"
    elif qualifier and qualifier != context.qualifier:
        check.status, check.fix = "blocker", fix
        check.detail = (
            f"{name} was bootstrapped with qualifier {qualifier}, the context asks for "
            f"{context.qualifier}"
        )
    else:
        check.detail = f"{name} {status}" + (f", version {version}" if version else "")
    report.add(check)


# --- images and the adapter layer ----------------------------------------------------


def _images(aws: Aws, config: DeployConfig, report: DoctorReport) -> None:
    images: dict[str, tuple[ContainerImage, list[str]]] = {}
    for m in config.models:
        image = m.catalog.image
        images.setdefault(image.name, (image, []))[1].append(m.public_id)
    for image, users in images.values():
        check = Check(
            f"image:{image.repository}",
            f"image {image.repository}",
            "ok",
            "",
            data={"image": image.name, "models": users},
        )
        report.add(check)
        try:
            account = image.account(aws.region)
        except CatalogError as exc:
            check.status, check.detail = "blocker", str(exc)
            check.fix = "deploy in a region that has it, or choose other models"
            continue
        check.data["uri"] = image.uri(aws.region)
        _ecr_image(aws, image, account, check)


def _ecr_image(aws: Aws, image: ContainerImage, account: str, check: Check) -> None:
    where = image.uri(aws.region)
    try:
        with aws_errors():
            answer = aws.client("ecr").batch_get_image(
                registryId=account,
                repositoryName=image.repository,
                imageIds=[{"imageTag": image.tag}],
            )
    except CliError as exc:
        code = error_code(exc)
        if code == "RepositoryNotFoundException":
            check.status, check.detail = "blocker", f"{where}: no such repository in {account}"
            check.fix = "deploy in another region, or update the image in infra/images.py"
        else:
            check.status = "warning"
            check.detail = f"listed in {where} by the catalog; could not verify: {exc}"
        return
    if answer.get("images"):
        check.detail = f"{where} exists"
        return
    failures = answer.get("failures") or [{}]
    reason = failures[0].get("failureReason") or failures[0].get("failureCode") or "not found"
    check.status, check.detail = "blocker", f"{where}: {reason}"
    check.fix = "update the image tag in infra/images.py"


def adapter_layer_arn(region: str, partition: str) -> str:
    """The Lambda Web Adapter layer the API stack uses in `region` (infra's own choice;
    a ConfigError where none is published)."""
    # infra's constructs import aws_cdk (jsii): quiet its Node banner, as app.py does.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.constructs.proxy_function import adapter_layer

    return str(adapter_layer(region).arn(partition, region))


def _adapter_layer(aws: Aws, report: DoctorReport) -> None:
    check = report.add(Check("layer", "Lambda Web Adapter layer", "ok", ""))
    try:
        arn = adapter_layer_arn(aws.region, _partition(aws))
    except ConfigError as exc:
        check.status, check.detail = "blocker", str(exc)
        check.fix = "deploy in a commercial region"
        return
    check.data["arn"] = arn
    layer, _, version = arn.rpartition(":")
    try:
        with aws_errors():
            aws.client("lambda").get_layer_version(LayerName=layer, VersionNumber=int(version))
    except CliError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            check.status, check.detail = "blocker", f"{arn} does not exist in {aws.region}"
            check.fix = "deploy in a region where the adapter publishes its layer"
        else:  # a permission error says nothing about the layer
            check.status, check.detail = "warning", f"could not read {arn}: {exc}"
        return
    check.detail = f"{arn} readable"


# --- quotas ---------------------------------------------------------------------------


def quota_name(instance_type: str) -> str:
    return f"{instance_type} for endpoint usage"


def _quotas(aws: Aws, config: DeployConfig, report: DoctorReport) -> None:
    needed: dict[str, int] = {}
    # A shared endpoint's instances once: its members' copies share them.
    counts = [(m.instance.name, m.max_capacity) for m in config.models if m.shared is None]
    counts += [(s.instance.name, s.max_instances) for s in config.endpoints]
    for instance_type, most in counts:
        needed[instance_type] = needed.get(instance_type, 0) + most
    if not needed:
        return
    try:
        values = _quota_values(aws, "list_service_quotas")
        missing = [t for t in needed if quota_name(t) not in values]
        if missing:  # quotas without an applied value are listed with the defaults only
            defaults = _quota_values(aws, "list_aws_default_service_quotas")
            values.update({k: v for k, v in defaults.items() if k not in values})
    except CliError as exc:
        report.add(
            Check(
                "quota",
                "SageMaker quotas",
                "warning",
                f"could not read the SageMaker quotas: {exc}",
                f"check {', '.join(quota_name(t) for t in needed)} in {QUOTA_CONSOLE}",
            )
        )
        return
    for instance_type, count in needed.items():
        name = quota_name(instance_type)
        value = values.get(name)
        data: dict[str, Any] = {"quota": name, "value": value, "needed": count}
        check = Check(f"quota:{instance_type}", f"quota {name}", "ok", "", data=data)
        report.add(check)
        if value is None:
            check.status = "warning"
            check.detail = f'no quota named "{name}" in {aws.region}'
            check.fix = f"check it in {QUOTA_CONSOLE}"
        elif value < count:
            check.status = "blocker"
            check.detail = f"quota {value:g} in {aws.region}, the context needs up to {count}" + (
                " (no instance of this type allowed)" if value == 0 else ""
            )
            check.fix = f"request {count} or more at {QUOTA_CONSOLE}"
            data["link"] = QUOTA_CONSOLE
        else:
            check.detail = f"quota {value:g}, the context needs up to {count}"


def _quota_values(aws: Aws, operation: str) -> dict[str, float]:
    values: dict[str, float] = {}
    client = aws.client("service-quotas")
    with aws_errors():
        for page in client.get_paginator(operation).paginate(ServiceCode="sagemaker"):
            for quota in page.get("Quotas", []):
                values[quota["QuotaName"]] = float(quota["Value"])
    return values


# --- collisions ------------------------------------------------------------------------


def _collisions(aws: Aws, config: DeployConfig, report: DoctorReport) -> None:
    try:
        deployment = find_deployment(aws, config.prefix)
    except CliError as exc:
        report.add(
            Check("stacks", "existing stacks", "warning", f"could not list the stacks: {exc}")
        )
        return
    _stack_check(report, config.api_stack_name, deployment.api, _is_api_stack)
    existing = {s.name: s for s in deployment.models}
    for m in config.models:
        stack = existing.pop(m.stack_name, None)
        _stack_check(report, m.stack_name, stack, lambda s, m=m: _is_model_stack(s, m))
        if m.shared is None:  # a member's endpoint is its group's, checked below
            _endpoint_check(aws, report, m.endpoint_name, m.stack_name, stack)
            _log_group_check(aws, report, m.endpoint_name, stack)
    for shared in config.endpoints:
        _shared_endpoint_checks(aws, report, shared)
    for stack in existing.values():
        report.add(
            Check(
                f"stack:{stack.name}",
                f"stack {stack.name}",
                "warning",
                f"{stack.status}, not in this context: `cdk deploy --all` leaves it running "
                "and the API stops routing to it",
                f"npx cdk destroy {stack.name} (or add its model to emd:models)",
            )
        )


def _shared_endpoint_checks(aws: Aws, report: DoctorReport, shared: SharedEndpoint) -> None:
    """A shared endpoint's stack (not a `-Model-` stack, so looked up by name), its
    endpoint and retained log group, like a model's."""
    name = shared.stack_name
    try:
        stack = describe_stack(aws, name)
    except CliError as exc:
        report.add(Check(f"stack:{name}", f"stack {name}", "warning", f"could not check: {exc}"))
        return
    _stack_check(
        report,
        name,
        stack,
        lambda s: (
            s.outputs.get("EndpointName", shared.endpoint_name) == shared.endpoint_name
            and (s.description or "").startswith(OWN_DESCRIPTION)
        ),
    )
    _endpoint_check(aws, report, shared.endpoint_name, name, stack)
    _log_group_check(aws, report, shared.endpoint_name, stack)


def _is_api_stack(stack: Stack) -> bool:
    return (stack.description or "").startswith(OWN_DESCRIPTION) or "BaseURL" in stack.outputs


def _is_model_stack(stack: Stack, m: ModelDeployment) -> bool:
    model_id = stack.outputs.get("ModelId")
    if model_id is not None:
        return model_id == m.public_id
    return (stack.description or "").startswith(OWN_DESCRIPTION)


def _stack_check(
    report: DoctorReport, name: str, stack: Stack | None, ours: Callable[[Stack], bool]
) -> None:
    check = report.add(Check(f"stack:{name}", f"stack {name}", "ok", ""))
    if stack is None:
        check.detail = "does not exist: will be created"
        return
    check.data["stack_status"] = stack.status
    if not ours(stack):
        check.status = "blocker"
        check.detail = f"exists ({stack.status}) and is not this deployment's stack"
        check.fix = "choose another emd:prefix (-c emd:prefix=...), or delete that stack"
    elif stack.status in _STUCK:
        check.status = "blocker"
        check.detail = f"is {stack.status}"
        check.fix = (
            f"aws cloudformation continue-update-rollback --stack-name {name}"
            if stack.status == "UPDATE_ROLLBACK_FAILED"
            else f"wait, then delete it: aws cloudformation delete-stack --stack-name {name}"
        )
    elif stack.in_progress:
        check.status = "blocker"
        check.detail = f"is {stack.status}: another deployment is running"
        check.fix = "wait for it (emd status --watch)"
    elif stack.status == "ROLLBACK_COMPLETE":
        check.status = "warning"
        check.detail = "ROLLBACK_COMPLETE (its first creation failed): cdk deletes and recreates it"
    elif stack.failed:
        check.status = "warning"
        check.detail = f"{stack.status}: `cdk deploy` retries the failed update"
    else:
        check.detail = f"exists ({stack.status}): will be updated"


def _endpoint_check(
    aws: Aws, report: DoctorReport, name: str, stack_name: str, stack: Stack | None
) -> None:
    check = report.add(Check(f"endpoint:{name}", f"endpoint {name}", "ok", ""))
    try:
        with aws_errors():
            live = aws.client("sagemaker").describe_endpoint(EndpointName=name)
    except CliError as exc:
        if error_code(exc) in ("ValidationException", "ValidationError"):
            check.detail = "does not exist: will be created"
        else:
            check.status, check.detail = "warning", f"could not check: {exc}"
        return
    owner = _endpoint_owner(aws, live, stack)
    check.data["endpoint_status"] = live.get("EndpointStatus")
    if stack is not None and owner == stack.name:
        check.detail = f"exists ({live.get('EndpointStatus')}), owned by {stack.name}"
        return
    check.status = "blocker"
    check.detail = (
        f"exists ({live.get('EndpointStatus')}) and is not owned by stack {stack_name}"
        + (f" but by {owner}" if owner else "")
    )
    check.fix = (
        f"delete it (aws sagemaker delete-endpoint --endpoint-name {name}) "
        "or use another emd:prefix or tag"
    )


def _endpoint_owner(aws: Aws, live: dict[str, Any], stack: Stack | None) -> str | None:
    """The stack that made the endpoint: ours when our stack lists it among its
    resources; else CloudFormation's `aws:cloudformation:stack-name` tag, if any."""
    name, arn = live.get("EndpointName"), live.get("EndpointArn")
    if stack is not None:
        try:
            with aws_errors():
                pages = aws.client("cloudformation").get_paginator("list_stack_resources")
                for page in pages.paginate(StackName=stack.name):
                    for resource in page.get("StackResourceSummaries", []):
                        if resource.get("ResourceType") == "AWS::SageMaker::Endpoint" and (
                            resource.get("PhysicalResourceId") in (name, arn)
                        ):
                            return stack.name
        except CliError:
            pass  # fall back to the tags
    try:
        with aws_errors():
            tags = aws.client("sagemaker").list_tags(ResourceArn=arn).get("Tags", [])
    except CliError:
        return None
    return next((t["Value"] for t in tags if t["Key"] == "aws:cloudformation:stack-name"), None)


def _log_group_check(aws: Aws, report: DoctorReport, endpoint: str, stack: Stack | None) -> None:
    """The endpoint's log group outlives its stack (retained, infra's model endpoint):
    a new stack then fails to create it ("already exists")."""
    if stack is not None and stack.status != "ROLLBACK_COMPLETE":
        return  # the stack has it already
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    try:
        with aws_errors():
            found = aws.client("logs").describe_log_groups(logGroupNamePrefix=group)
    except CliError as exc:
        report.add(Check(f"log-group:{group}", f"log group {group}", "warning", str(exc)))
        return
    if any(g.get("logGroupName") == group for g in found.get("logGroups", [])):
        report.add(
            Check(
                f"log-group:{group}",
                f"log group {group}",
                "blocker",
                "exists (kept from an earlier deployment): creating the stack would fail",
                "deploy with --import-existing-resources, or "
                f"aws logs delete-log-group --log-group-name {group}",
            )
        )


# --- cost ------------------------------------------------------------------------------


def _cost(config: DeployConfig, region: str, report: DoctorReport) -> dict[str, Any]:
    def row(instance_type: str, least: int, most: int) -> dict[str, Any]:
        price = hourly_price(instance_type, region)
        return {
            "instance_type": instance_type,
            "min_capacity": least,
            "max_capacity": most,
            "price_per_instance_hour": price,
            "hourly_usd": None if price is None else round(price * least, 4),
            "max_hourly_usd": None if price is None else round(price * most, 4),
        }

    # Members of a shared endpoint are priced in `endpoints`, once per endpoint.
    models = [
        {"id": m.public_id} | row(m.instance.name, m.min_capacity, m.max_capacity)
        for m in config.models
        if m.shared is None
    ]
    endpoints = [
        {"endpoint": s.name, "members": list(s.members)}
        | row(s.instance.name, s.min_instances, s.max_instances)
        for s in config.endpoints
    ]
    rows = models + endpoints
    unknown = sorted({x["instance_type"] for x in rows if x["price_per_instance_hour"] is None})
    hourly = None if unknown else round(sum(x["hourly_usd"] for x in rows), 4)
    peak = None if unknown else round(sum(x["max_hourly_usd"] for x in rows), 4)
    cost = {
        "hourly_usd": hourly,
        "daily_usd": None if hourly is None else round(hourly * HOURS_PER_DAY, 2),
        "max_daily_usd": None if peak is None else round(peak * HOURS_PER_DAY, 2),
        "unknown_prices": unknown,
        "prices_as_of": PRICES_AS_OF,
        "source": PRICES_SOURCE,
        "models": models,
        "endpoints": endpoints,
    }
    if not rows:
        detail = "no endpoints: the API bills per request only"
    elif hourly is None:
        detail = f"? (no price for {', '.join(unknown)} in {region}; see {PRICES_SOURCE})"
    else:
        detail = f"${hourly:,.2f}/hour, ${cost['daily_usd']:,.2f}/day on demand"
        if peak != hourly:
            detail += f" (up to ${cost['max_daily_usd']:,.2f}/day at max_capacity)"
    report.add(
        Check("cost", "endpoint cost", "ok", detail + f" (prices of {PRICES_AS_OF})", data={})
    )
    return cost

"""The CLI's one AWS boundary: clients for a region, finding a deployment's stacks, and
turning botocore failures into one-line `CliError`s.

boto3 follows the usual settings (profiles, AWS_REGION, AWS_ENDPOINT_URL), so tests
point it at moto with nothing special here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from .errors import CliError

# An admin's terminal: answer fast, a few retries for throttling on big accounts.
_CONFIG = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=10)
_CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
}
# A stack whose last operation failed: its reason is what the user needs to see.
FAILED_MARKERS = ("ROLLBACK", "FAILED")


@dataclass(frozen=True)
class Stack:
    name: str
    status: str
    reason: str | None
    outputs: dict[str, str]
    created: datetime | None = None
    description: str | None = None

    @property
    def failed(self) -> bool:
        return any(marker in self.status for marker in FAILED_MARKERS)

    @property
    def in_progress(self) -> bool:
        # REVIEW_IN_PROGRESS (a change set nobody executed) never moves on by itself.
        return self.status.endswith("_IN_PROGRESS") and self.status != "REVIEW_IN_PROGRESS"


@dataclass(frozen=True)
class Deployment:
    api: Stack | None
    models: list[Stack] = field(default_factory=list)


class Aws:
    """boto3 clients for one region, created on first use."""

    def __init__(self, region: str | None = None, profile: str | None = None) -> None:
        with aws_errors():
            self.session = boto3.session.Session(region_name=region, profile_name=profile)
        if not self.session.region_name:
            raise CliError(
                "no AWS region: pass --region, set AWS_REGION, or set a default region "
                "with `aws configure`"
            )
        self.region: str = self.session.region_name
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            with aws_errors():
                self._clients[service] = self.session.client(service, config=_CONFIG)
        return self._clients[service]


@contextmanager
def aws_errors() -> Iterator[None]:
    """Every botocore failure becomes a one-line CliError (the CLI's only mapping)."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise CliError(
            "no AWS credentials found: run `aws configure` or `aws sso login`, or set "
            "AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        ) from exc
    except ProfileNotFound as exc:
        raise CliError(f"AWS profile not found: {exc.kwargs.get('profile')}") from exc
    except NoRegionError as exc:
        raise CliError("no AWS region: pass --region or set AWS_REGION") from exc
    except EndpointConnectionError as exc:
        raise CliError(f"cannot reach AWS: {exc}") from exc
    except ClientError as exc:
        raise CliError(client_error_message(exc)) from exc
    except BotoCoreError as exc:
        raise CliError(f"AWS call failed: {exc}") from exc


def client_error_message(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", "")).strip()
    if code in _CREDENTIAL_CODES:
        return f"AWS rejected the credentials ({code}): refresh them and try again"
    return f"{exc.operation_name} failed: {code}: {message}" if message else f"{code}"


def error_code(exc: BaseException) -> str | None:
    cause = exc.__cause__ if isinstance(exc, CliError) else exc
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code"))
    return None


def api_stack_name(prefix: str) -> str:
    return f"{prefix}-API"


def model_stack_prefix(prefix: str) -> str:
    return f"{prefix}-Model-"


def find_deployment(aws: Aws, prefix: str) -> Deployment:
    """The API stack and every model stack of `prefix` (stacks that are not deleted),
    through every page of DescribeStacks."""
    api: Stack | None = None
    models: list[Stack] = []
    paginator = aws.client("cloudformation").get_paginator("describe_stacks")
    with aws_errors():
        for page in paginator.paginate():
            for raw in page.get("Stacks", []):
                name = raw["StackName"]
                if name == api_stack_name(prefix):
                    api = _stack(raw)
                elif name.startswith(model_stack_prefix(prefix)):
                    models.append(_stack(raw))
    models.sort(key=lambda stack: stack.name)
    return Deployment(api, models)


def describe_stack(aws: Aws, name: str) -> Stack | None:
    cfn = aws.client("cloudformation")
    try:
        with aws_errors():
            stacks = cfn.describe_stacks(StackName=name).get("Stacks", [])
    except CliError as exc:
        # CloudFormation says "Stack with id X does not exist" as a ValidationError.
        if error_code(exc) == "ValidationError":
            return None
        raise
    return _stack(stacks[0]) if stacks else None


def first_failure(aws: Aws, stack_name: str) -> str | None:
    """The root cause of a stack's last failed operation: the oldest failed resource
    event since that operation started ("resource creation cancelled" events are
    only consequences)."""
    paginator = aws.client("cloudformation").get_paginator("describe_stack_events")
    failures: list[dict[str, Any]] = []
    with aws_errors():
        for page in paginator.paginate(StackName=stack_name):
            for event in page.get("StackEvents", []):  # newest first
                if _operation_start(event, stack_name):
                    return _describe_failure(failures[-1]) if failures else None
                reason = event.get("ResourceStatusReason") or ""
                if (
                    event.get("ResourceStatus", "").endswith("_FAILED")
                    and event.get("LogicalResourceId") != stack_name
                    and "cancelled" not in reason.lower()
                ):
                    failures.append(event)
    return _describe_failure(failures[-1]) if failures else None


def _operation_start(event: dict[str, Any], stack_name: str) -> bool:
    return (
        event.get("LogicalResourceId") == stack_name
        and event.get("ResourceType") == "AWS::CloudFormation::Stack"
        and event.get("ResourceStatus") in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS")
        and event.get("ResourceStatusReason") == "User Initiated"
    )


def _describe_failure(event: dict[str, Any]) -> str:
    return (
        f"{event.get('LogicalResourceId')} ({event.get('ResourceType')}) "
        f"{event.get('ResourceStatus')}: {event.get('ResourceStatusReason') or 'no reason given'}"
    )


def _stack(raw: dict[str, Any]) -> Stack:
    return Stack(
        name=raw["StackName"],
        status=raw.get("StackStatus", "UNKNOWN"),
        reason=raw.get("StackStatusReason"),
        outputs={o["OutputKey"]: o.get("OutputValue", "") for o in raw.get("Outputs") or []},
        created=raw.get("CreationTime"),
        description=raw.get("Description"),
    )

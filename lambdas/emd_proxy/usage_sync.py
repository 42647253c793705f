"""API Gateway API keys and usage plans from the key document: `reconcile` makes the
deployment's API keys and usage plans match the document, so API Gateway enforces each
key's rate, burst and quota before any Lambda runs.

- One API key per EMD key, named `<prefix>-<key name>`, whose value is the
  authorizer's `usage_key` (a hash, never the EMD key). A rotated key gets a new API
  key (API Gateway cannot change a key's value); a revoked key's API key is deleted.
- One usage plan per distinct set of limits, named after them (`<prefix>-r10-b20-qnone`),
  attached to the API stage. Usage plan limits apply to each API key in the plan on its
  own, so keys with equal limits share one plan: a deployment needs as many plans as it
  has different limits (API Gateway allows 300 plans per account and region by default).
- A key's limits are its `limits` fields, the deployment default (`emd:key_limits`)
  filling the ones it leaves out (a rate without a burst gets `effective_burst`).
- Everything this creates is tagged `emd:prefix=<prefix>`, and only such resources are
  ever changed or deleted. Running it twice changes nothing the second time.

It runs in the key-sync Lambda: at deploy (a CloudFormation custom resource, so the
generated default key works on the first request) and when `emd keys` invokes it after
writing the secret (`{"action": "sync"}`). The Lambda's environment names the
deployment: EMD_API_KEY_SECRET_ID, EMD_PREFIX, EMD_REST_API_ID, EMD_STAGE and
EMD_DEFAULT_KEY_LIMITS (JSON, `{}` for none). Key values never reach a log or answer."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .auth import KeyLimits, parse_key_document, parse_key_limits
from .authorizer import usage_key
from .log import logger

PREFIX_TAG = "emd:prefix"


@dataclass(frozen=True, order=True)
class PlanLimits:
    """What one usage plan enforces on each of its API keys (None: not limited)."""

    rate: float | None
    burst: int | None
    quota: int | None
    quota_period: str | None

    @classmethod
    def of(cls, own: KeyLimits | None, default: KeyLimits | None) -> PlanLimits:
        """The key's own fields, the default's for the ones it leaves out."""
        own = own or KeyLimits()
        default = default or KeyLimits()
        throttle = own if own.rate is not None else default
        quota = own if own.quota is not None else default
        return cls(
            rate=throttle.rate,
            burst=throttle.effective_burst,
            quota=quota.quota,
            quota_period=quota.quota_period if quota.quota is not None else None,
        )

    def plan_name(self, prefix: str) -> str:
        rate = "none" if self.rate is None else f"{self.rate:g}"
        burst = "none" if self.burst is None else str(self.burst)
        quota = "none" if self.quota is None else f"{self.quota}-per-{self.quota_period}"
        return f"{prefix}-r{rate}-b{burst}-q{quota}".lower()

    def settings(self) -> dict[str, Any]:
        """create_usage_plan's throttle and quota arguments."""
        out: dict[str, Any] = {}
        if self.rate is not None:
            out["throttle"] = {"rateLimit": self.rate, "burstLimit": self.burst}
        if self.quota is not None:
            out["quota"] = {"limit": self.quota, "period": self.quota_period}
        return out


@dataclass(frozen=True)
class Deployment:
    prefix: str
    rest_api_id: str
    stage: str
    default_limits: KeyLimits | None

    @property
    def api_stage(self) -> str:
        return f"{self.rest_api_id}:{self.stage}"

    @property
    def tags(self) -> dict[str, str]:
        return {PREFIX_TAG: self.prefix}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Deployment:
        raw = json.loads(environ.get("EMD_DEFAULT_KEY_LIMITS") or "{}")
        return cls(
            prefix=environ["EMD_PREFIX"],
            rest_api_id=environ["EMD_REST_API_ID"],
            stage=environ["EMD_STAGE"],
            default_limits=parse_key_limits("default", raw) if raw else None,
        )


@dataclass
class SyncReport:
    """What changed, by key and plan names (never values)."""

    keys: int = 0
    plans: list[str] = field(default_factory=list)
    created_keys: list[str] = field(default_factory=list)
    replaced_keys: list[str] = field(default_factory=list)
    deleted_keys: list[str] = field(default_factory=list)
    created_plans: list[str] = field(default_factory=list)
    deleted_plans: list[str] = field(default_factory=list)
    moved_keys: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(
            (
                self.created_keys,
                self.replaced_keys,
                self.deleted_keys,
                self.created_plans,
                self.deleted_plans,
                self.moved_keys,
            )
        )

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "changed": self.changed}


def desired_keys(
    document: Mapping[str, Any], deployment: Deployment
) -> dict[str, tuple[str, PlanLimits]]:
    """API key name -> (API key value, limits) for every key of the document."""
    out: dict[str, tuple[str, PlanLimits]] = {}
    owner: dict[str, str] = {}  # API key value -> EMD key name
    for key in parse_key_document(document):
        name = f"{deployment.prefix}-{key.principal.name}"
        value = usage_key(deployment.prefix, key.secret.decode())
        if value in owner:
            # API Gateway takes one API key per value: the two would share one.
            raise ValueError(
                f"keys {owner[value]!r} and {key.principal.name!r} have the same key string; "
                "rotate one of them"
            )
        owner[value] = key.principal.name
        out[name] = (value, PlanLimits.of(key.principal.limits, deployment.default_limits))
    return out


def _pages(client: Any, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get("items", [])


def _ours(items: Iterable[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [i for i in items if (i.get("tags") or {}).get(PREFIX_TAG) == prefix]


def reconcile(client: Any, document: Mapping[str, Any], deployment: Deployment) -> SyncReport:
    """Makes the prefix's API keys and usage plans match `document` (an apigateway
    client). Raises the key document's error before changing anything."""
    wanted = desired_keys(document, deployment)
    report = SyncReport(keys=len(wanted))
    prefix = deployment.prefix

    # Usage plans: one per distinct limits, attached to our stage.
    wanted_plans = {limits.plan_name(prefix): limits for _, limits in wanted.values()}
    plans: dict[str, str] = {}  # plan name -> id
    for plan in _ours(_pages(client, "get_usage_plans"), prefix):
        if plan["name"] in wanted_plans and plan["name"] not in plans:
            plans[plan["name"]] = plan["id"]
            stages = {f"{s['apiId']}:{s['stage']}" for s in plan.get("apiStages", [])}
            if deployment.api_stage not in stages:
                _patch_plan(client, plan["id"], "add", "/apiStages", deployment.api_stage)
        else:
            _delete_plan(client, plan, deployment)
            report.deleted_plans.append(plan["name"])
    for name, limits in sorted(wanted_plans.items()):
        if name not in plans:
            created = client.create_usage_plan(
                name=name,
                description=f"EMD gateway {prefix}: limits of each API key in this plan",
                apiStages=[{"apiId": deployment.rest_api_id, "stage": deployment.stage}],
                tags=deployment.tags,
                **limits.settings(),
            )
            plans[name] = created["id"]
            report.created_plans.append(name)
    report.plans = sorted(plans)

    # API keys: one per EMD key, with the derived value.
    key_ids: dict[str, str] = {}  # API key name -> id
    for api_key in _ours(_pages(client, "get_api_keys", includeValues=True), prefix):
        name = api_key["name"]
        want = wanted.get(name)
        if want is not None and api_key.get("value") == want[0] and name not in key_ids:
            key_ids[name] = api_key["id"]
            if not api_key.get("enabled", True):
                client.update_api_key(
                    apiKey=api_key["id"],
                    patchOperations=[{"op": "replace", "path": "/enabled", "value": "true"}],
                )
            continue
        client.delete_api_key(apiKey=api_key["id"])
        (report.replaced_keys if want is not None else report.deleted_keys).append(name)
    for name, (value, _) in sorted(wanted.items()):
        if name not in key_ids:
            created = client.create_api_key(
                name=name,
                description=f"EMD gateway {prefix}: usage identifier of one EMD key",
                enabled=True,
                value=value,
                tags=deployment.tags,
            )
            key_ids[name] = created["id"]
            if name not in report.replaced_keys:
                report.created_keys.append(name)

    # Membership: each key in exactly its plan (an API key may be in one plan per
    # stage, so removals go first).
    target = {
        key_ids[name]: plans[limits.plan_name(prefix)] for name, (_, limits) in wanted.items()
    }
    names = {key_id: name for name, key_id in key_ids.items()}
    members = {
        plan_id: {k["id"] for k in _pages(client, "get_usage_plan_keys", usagePlanId=plan_id)}
        for plan_id in plans.values()
    }
    for plan_id, key_set in members.items():
        for key_id in sorted(key_set):
            if target.get(key_id) != plan_id:
                client.delete_usage_plan_key(usagePlanId=plan_id, keyId=key_id)
    new_keys = {*report.created_keys, *report.replaced_keys}
    for key_id, plan_id in sorted(target.items()):
        if key_id not in members.get(plan_id, set()):
            client.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
            if names[key_id] not in new_keys:
                report.moved_keys.append(names[key_id])
    report.moved_keys.sort()
    return report


def _patch_plan(client: Any, plan_id: str, op: str, path: str, value: str) -> None:
    client.update_usage_plan(
        usagePlanId=plan_id, patchOperations=[{"op": op, "path": path, "value": value}]
    )


def _delete_plan(client: Any, plan: Mapping[str, Any], deployment: Deployment) -> None:
    # A plan still attached to a stage cannot be deleted: detach it first.
    for stage in plan.get("apiStages", []):
        _patch_plan(
            client, plan["id"], "remove", "/apiStages", f"{stage['apiId']}:{stage['stage']}"
        )
    client.delete_usage_plan(usagePlanId=plan["id"])


def remove_all(client: Any, deployment: Deployment) -> SyncReport:
    """Deletes every API key and usage plan of the prefix (the stack's deletion)."""
    report = SyncReport()
    for api_key in _ours(_pages(client, "get_api_keys"), deployment.prefix):
        client.delete_api_key(apiKey=api_key["id"])
        report.deleted_keys.append(api_key["name"])
    for plan in _ours(_pages(client, "get_usage_plans"), deployment.prefix):
        _delete_plan(client, plan, deployment)
        report.deleted_plans.append(plan["name"])
    return report


# --- the key-sync Lambda ---------------------------------------------------------


def _client(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().create_client(service)


def read_document(secrets: Any, secret_id: str) -> Any:
    return json.loads(secrets.get_secret_value(SecretId=secret_id)["SecretString"])


def sync(deployment: Deployment, secret_id: str) -> SyncReport:
    document = read_document(_client("secretsmanager"), secret_id)
    report = reconcile(_client("apigateway"), document, deployment)
    logger.info("usage plans synced", extra=report.as_dict())
    return report


def handler(event: dict[str, Any], _context: object) -> dict[str, Any]:
    """`{"action": "sync"}` from `emd keys`, or a CloudFormation custom resource event."""
    deployment = Deployment.from_env()
    secret_id = os.environ["EMD_API_KEY_SECRET_ID"]
    if "RequestType" not in event:
        if event.get("action") != "sync":
            return {"error": 'expected {"action": "sync"}'}
        try:
            return sync(deployment, secret_id).as_dict()
        except ValueError as exc:  # the key document's own message: no values in it
            return {"error": str(exc)}
    return _custom_resource(event, deployment, secret_id)


def _custom_resource(
    event: Mapping[str, Any], deployment: Deployment, secret_id: str
) -> dict[str, Any]:
    status, reason, data = "SUCCESS", "", {}
    try:
        if event["RequestType"] == "Delete":
            data = remove_all(_client("apigateway"), deployment).as_dict()
        else:
            data = sync(deployment, secret_id).as_dict()
    except Exception as exc:  # noqa: BLE001 (CloudFormation must get an answer)
        logger.exception("key sync failed", extra={"request_type": event["RequestType"]})
        # A failed delete must not strand the stack's deletion: the leftovers are tagged
        # and the next deploy of the prefix (or `emd keys`) cleans them up.
        if event["RequestType"] != "Delete":
            status = "FAILED"
            reason = (str(exc) if isinstance(exc, ValueError) else type(exc).__name__)[:500]
    body = {
        "Status": status,
        "Reason": reason or "see the key-sync Lambda's log",
        "PhysicalResourceId": f"{deployment.prefix}-usage-plans",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": {"Keys": str(data.get("keys", 0)), "Plans": ",".join(data.get("plans", []))},
    }
    _respond(event["ResponseURL"], body)
    return body


def _respond(url: str, body: Mapping[str, Any]) -> None:
    payload = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (CloudFormation's presigned https URL)
        url, data=payload, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()

"""A local SageMaker control plane: what boto3's `sagemaker` client talks to when
`AWS_ENDPOINT_URL_SAGEMAKER` points here (`emd serve --scale-to-zero-after`).

SageMaker's JSON protocol: `POST /` with `X-Amz-Target: SageMaker.<Operation>` and an
`application/x-amz-json-1.1` body; errors are status 400 with
`{"__type": "ValidationException", "message": ...}` (botocore's JSON parser reads the
code from `__type` and the message from `message`). Only what the gateway uses for
scale to zero: DescribeInferenceComponent, UpdateInferenceComponentRuntimeConfig,
ListInferenceComponents and DescribeEndpoint of the local endpoints.

Admin routes (not SageMaker's): `GET /_emulator/components` (what `emd status
--local` reads) and `POST /_emulator/components/{name}/unload` (to zero at once, so
tests need not wait for the idle timer)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .components import VARIANT, Component, ComponentError, Components

_MEDIA_TYPE = "application/x-amz-json-1.1"
_PREFIX = "SageMaker."

Operation = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlPlane:
    def __init__(self, components: Components) -> None:
        self.components = components
        self._operations: dict[str, Operation] = {
            "DescribeInferenceComponent": self.describe_inference_component,
            "UpdateInferenceComponentRuntimeConfig": self.update_runtime_config,
            "ListInferenceComponents": self.list_inference_components,
            "DescribeEndpoint": self.describe_endpoint,
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.dispatch, methods=["POST"]),
                Route("/_emulator/components", self.components_api, methods=["GET"]),
                Route("/_emulator/components/{name}/unload", self.unload_api, methods=["POST"]),
            ]
        )

    async def dispatch(self, request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        operation = self._operations.get(target.removeprefix(_PREFIX))
        if not target.startswith(_PREFIX) or operation is None:
            return _error("UnknownOperationException", f"Unknown operation {target}.")
        try:
            params = json.loads(await request.body() or b"{}")
            if not isinstance(params, dict):
                raise ValueError
        except ValueError:
            return _error("SerializationException", "The request body is not a JSON object.")
        try:
            return _answer(await operation(params))
        except ComponentError as exc:
            return _error("ValidationException", str(exc))

    # --- operations --------------------------------------------------------------------
    async def describe_inference_component(self, params: dict[str, Any]) -> dict[str, Any]:
        return _describe(self._component(params))

    async def update_runtime_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _required(params, "InferenceComponentName")
        desired = params.get("DesiredRuntimeConfig")
        copies = desired.get("CopyCount") if isinstance(desired, dict) else None
        if not isinstance(copies, int) or isinstance(copies, bool):
            raise ComponentError(
                "1 validation error detected: Value null at 'desiredRuntimeConfig.copyCount' "
                "failed to satisfy constraint: Member must not be null"
            )
        return {"InferenceComponentArn": self.components.update(name, copies).arn}

    async def list_inference_components(self, params: dict[str, Any]) -> dict[str, Any]:
        endpoint = params.get("EndpointNameEquals")
        rows = []
        for name in self.components.names():
            component = self.components.get(name)
            if component is None or (endpoint and component.endpoint != endpoint):
                continue
            described = _describe(component)
            rows.append(
                {
                    key: described[key]
                    for key in (
                        "CreationTime",
                        "InferenceComponentArn",
                        "InferenceComponentName",
                        "EndpointArn",
                        "EndpointName",
                        "VariantName",
                        "InferenceComponentStatus",
                        "LastModifiedTime",
                    )
                }
            )
        return {"InferenceComponents": rows}

    async def describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _required(params, "EndpointName")
        on_it = [c for n in self.components.on_endpoint(name) if (c := self.components.get(n))]
        if not on_it:
            raise ComponentError(f'Could not find endpoint "{name}".')
        # Managed instance scaling: the instance goes when its last copy does.
        instances = 1 if any(c.current for c in on_it) else 0
        desired = 1 if any(c.desired for c in on_it) else 0
        return {
            "EndpointName": name,
            "EndpointArn": on_it[0].endpoint_arn,
            "EndpointConfigName": name,
            "ProductionVariants": [
                {
                    "VariantName": VARIANT,
                    "CurrentInstanceCount": instances,
                    "DesiredInstanceCount": desired,
                    "ManagedInstanceScaling": {
                        "Status": "ENABLED",
                        "MinInstanceCount": 0,
                        "MaxInstanceCount": 1,
                    },
                    "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
                }
            ],
            "EndpointStatus": "InService",
            "CreationTime": min(c.created for c in on_it),
            "LastModifiedTime": max(c.modified for c in on_it),
        }

    def _component(self, params: dict[str, Any]) -> Component:
        name = _required(params, "InferenceComponentName")
        component = self.components.get(name)
        if component is None:
            raise ComponentError(f'Could not find inference component "{name}".')
        return component

    # --- admin -------------------------------------------------------------------------
    async def components_api(self, _: Request) -> Response:
        return JSONResponse({"components": self.components.snapshot()})

    async def unload_api(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            unloaded = self.components.unload(name)
        except ComponentError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        if not unloaded:
            return JSONResponse(
                {"error": f"{name} has a call in flight or is loading; try again"},
                status_code=409,
            )
        return JSONResponse({"components": self.components.snapshot()})


def _describe(component: Component) -> dict[str, Any]:
    described: dict[str, Any] = {
        "InferenceComponentName": component.name,
        "InferenceComponentArn": component.arn,
        "EndpointName": component.endpoint,
        "EndpointArn": component.endpoint_arn,
        "VariantName": VARIANT,
        "Specification": {
            "ModelName": component.model.model,
            "ComputeResourceRequirements": {
                "NumberOfCpuCoresRequired": 1,
                "MinMemoryRequiredInMb": 256,
            },
        },
        "RuntimeConfig": {
            "DesiredCopyCount": component.desired,
            "CurrentCopyCount": component.current,
        },
        "CreationTime": component.created,
        "LastModifiedTime": component.modified,
        "InferenceComponentStatus": component.status,
    }
    if component.failure_reason:
        described["FailureReason"] = component.failure_reason
    return described


def _required(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        member = key[0].lower() + key[1:]
        raise ComponentError(
            f"1 validation error detected: Value null at '{member}' failed to satisfy "
            "constraint: Member must not be null"
        )
    return value


def _answer(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), media_type=_MEDIA_TYPE, headers=_headers())


def _error(code: str, message: str) -> Response:
    return Response(
        json.dumps({"__type": code, "message": message}),
        status_code=400,
        media_type=_MEDIA_TYPE,
        headers=_headers(),
    )


def _headers() -> dict[str, str]:
    return {"x-amzn-RequestId": str(uuid.uuid4())}

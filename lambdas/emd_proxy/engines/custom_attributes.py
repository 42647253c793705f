"""What a caller of /v1/invocations may put in SageMaker's CustomAttributes (the
`X-Amzn-SageMaker-Custom-Attributes` header the container receives).

Containers read it as instructions, not as data:
- vLLM DLC (Amazon Linux image): `SageMakerRouteMiddleware` takes the first
  `route=(/[^\\s,]+)` anywhere in the header and rewrites the request path to it, so
  any route of the vLLM server answers (aws/deep-learning-containers@e0ecede
  scripts/docker/vllm/sagemaker_serve.py; the omni image the same).
- DJL LMI: `RequestParser.parseRequest` splits the header on `;` into `key=value`
  pairs and adds each as a request property, next to the real headers; properties are
  looked up without regard to case. `model_name` / `model_version` pick another
  model, `model_url` / `engine_name` / `device` load one, `handler` overrides the
  handler, `x-synchronous` / `x-starting-token` / `x-max-items` read cached results,
  and a header name (`X-Amzn-SageMaker-Adapter-Identifier`, `-Forwarded-Api`,
  `Content-Type`) overrides that header (deepjavalibrary/djl-serving@d21927c
  serving/.../http/RequestParser.java, InferenceRequestHandler.java; djl_python
  input_parser.py, inputs.py `get_property`).
- TGI, TEI and WhisperX do not read the header.

So a `route=` must be one of the model's own routes (its raw `/invocations`, or the
route our adapter uses for a family the model is deployed for), and the keys above
are refused whatever the engine: the gateway, not the caller, picks the model, the
route and the headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InvalidRequestError
from ..registry import RegistryEntry
from .vllm import VLLM_ROUTES

# The container routes our adapters reach through CustomAttributes, per engine and
# family; `/invocations` itself is every model's own.
FAMILY_ROUTES: dict[str, dict[str, tuple[str, ...]]] = {"vllm": VLLM_ROUTES}
OWN_ROUTE = "/invocations"

# Any `route=` (the DLC's regex is a search, so a key that merely ends in `route`
# counts too), with the path the DLC would take from it.
_ROUTE = re.compile(r"route=", re.IGNORECASE)
_DLC_PATH = re.compile(r"/[^\s,]+")
# DJL request properties that select a model, a handler or a cached result.
_DJL_KEYS = frozenset(
    {
        "model_name",
        "model_version",
        "model_url",
        "engine_name",
        "device",
        "handler",
        "requestid",
        "batch_size",
        "x-synchronous",
        "x-starting-token",
        "x-max-items",
        "x-next-token",
    }
)
# Header names a pair would override on DJL.
_HEADER_KEYS = frozenset({"content-type", "accept", "content-length", "host"})
_HEADER_PREFIXES = ("x-amzn-",)
# DJL splits pairs on `;`; `,` too, as vLLM's route regex stops there.
_PAIRS = re.compile(r"[;,]")


def allowed_routes(entry: RegistryEntry) -> frozenset[str]:
    routes = FAMILY_ROUTES.get(entry.engine, {})
    return frozenset({OWN_ROUTE, *(r for f in entry.families for r in routes.get(f, ()))})


def check_custom_attributes(value: str | None, entry: RegistryEntry) -> None:
    """Raise a 400 (param `custom_attributes`) for a route or key the caller may not set."""
    if not value:
        return
    _check_routes(value, allowed_routes(entry))
    for key in _keys(value):
        if key in _DJL_KEYS or key in _HEADER_KEYS or key.startswith(_HEADER_PREFIXES):
            raise InvalidRequestError(
                f"custom_attributes may not set `{key}`: the gateway picks the model, "
                "the route and the request headers.",
                param="custom_attributes",
            )


def _check_routes(value: str, allowed: frozenset[str]) -> None:
    for match in _ROUTE.finditer(value):
        path = _DLC_PATH.match(value, match.end())
        if path is None or path.group() not in allowed:
            shown = path.group() if path else value[match.end() :].split(",", maxsplit=1)[0]
            raise InvalidRequestError(
                f"custom_attributes may not pick the container route `{shown}`; "
                f"this model's routes: {', '.join(sorted(allowed))}.",
                param="custom_attributes",
            )


def _keys(value: str) -> Iterable[str]:
    for pair in _PAIRS.split(value):
        key, sep, _ = pair.partition("=")
        if sep:
            yield key.strip().lower()

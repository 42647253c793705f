"""What a container (or SageMaker) said, on its way out: the one gate for upstream text.

- A model failure (a container 5xx, an engine's failure inside a 200 answer or a
  stream, SageMaker's ModelStreamError) reaches the client as a fixed message naming
  the request id; the container's own text goes to the log under that id. Tracebacks,
  endpoint names and log groups are the container's business, not the caller's.
- A request the container refused (4xx) keeps the engine's words, so the caller can
  fix the request, but only after `sanitize`: no AWS account ids or ARNs, no endpoint
  names or log-group paths, no AWS console links or internal addresses, no traceback,
  and at most `MAX_CLIENT_CHARS` characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import UpstreamError
from .log import logger, request_id

MAX_CLIENT_CHARS = 500
# The container's text in the log: enough for a Python exception's last frames.
MAX_LOG_CHARS = 2000
REDACTED = "<redacted>"

# Everything from a traceback on is the container's internals (Python's header; a Java
# or JS stack's first "at" frame).
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\n\s*at [\w$.<>]+\(")
_SECRETS = re.compile(
    "|".join(
        (
            r"arn:aws[\w-]*:[^\s\"'<>,;\\]*",  # any ARN (account, region, resource)
            r"https?://[^\s\"'<>]*(?:amazonaws\.com|aws\.amazon\.com)[^\s\"'<>]*",
            r"/aws/sagemaker/[^\s\"'<>,;\\]*",  # log groups: /aws/sagemaker/Endpoints/x
            r"\b(?i:endpoints?)/[\w.-]+",  # resource paths naming an endpoint
            r"(?<![\w-])\d{12}(?![\w-])",  # an account id
            r"(?<![\w-])\d{4}-\d{4}-\d{4}(?![\w-])",  # an account id as the console shows it
            r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?(?![\w.])",  # an IPv4 address
            # Host paths of the container's files (site-packages, model directories).
            r"(?<![\w/.])/(?:opt|usr|home|root|tmp|var|srv|mnt|app|workspace)/[^\s\"'<>,;]*",
        )
    )
)


def sanitize(text: str, names: Iterable[str] = ()) -> str:
    """`text` as a client may read it: cut at a traceback, with AWS details, the given
    `names` (the endpoint's) and internal paths redacted, and at most
    `MAX_CLIENT_CHARS` long."""
    if match := _TRACEBACK.search(text):
        text = text[: match.start()]
    text = _SECRETS.sub(REDACTED, text)
    for name in names:
        if name:
            text = text.replace(name, REDACTED)
    text = text.strip()
    if len(text) > MAX_CLIENT_CHARS:
        text = text[: MAX_CLIENT_CHARS - 1].rstrip() + "…"
    return text


def model_failed(
    detail: str,
    *,
    endpoint: str | None = None,
    status: int | None = None,
    streaming: bool = False,
) -> UpstreamError:
    """The 502 for a model that failed: a fixed message with the request id; `detail`
    (what the container or SageMaker said) goes to the log only, under that id."""
    rid = request_id.get()
    logger.warning(
        "model failed",
        extra={
            "request_id": rid,
            "endpoint": endpoint,
            "original_status": status,
            "container_message": detail[:MAX_LOG_CHARS],
        },
    )
    what = "The model failed while streaming" if streaming else "The model failed"
    where = f" (request {rid})" if rid else ""
    return UpstreamError(f"{what}{where}. The details are in the gateway's logs.")

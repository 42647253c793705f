"""The proxy's structured logger (Powertools, JSON lines). It never logs keys,
prompts or outputs."""

from __future__ import annotations

import os
from contextvars import ContextVar

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "emd-proxy"))

# The id of the request being handled (set by the middleware; tasks a request spawns
# inherit it), so a log line and the error a client sees can name the same request.
request_id: ContextVar[str | None] = ContextVar("emd_request_id", default=None)

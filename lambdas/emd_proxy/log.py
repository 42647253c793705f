"""The proxy's structured logger (Powertools, JSON lines).

Never log keys, prompts or outputs; `sensitive()` gates content behind
EMD_LOG_SENSITIVE=1 for debugging."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "emd-proxy"))

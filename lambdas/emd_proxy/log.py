"""The proxy's structured logger (Powertools, JSON lines). It never logs keys,
prompts or outputs."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "emd-proxy"))

from __future__ import annotations

import os

# Keep the per-request log line out of test output unless asked for.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from __future__ import annotations

import os

# Keep the per-request log line out of test output unless asked for.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
# Usage metrics print one EMF line per request; tests/unit/test_metrics.py checks them.
os.environ.setdefault("EMD_USAGE_METRICS", "0")

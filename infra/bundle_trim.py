"""What the Lambda bundle leaves out of its installed packages: the parts a proxy
Lambda never loads, which cost it start-up time and package size.

- botocore's data for the 400-odd services but the few the proxy's client can touch
  (the SageMaker runtime, Secrets Manager, and the services botocore's credential chain may call):
  loading a service model first lists every service directory (about 11 ms of each
  cold start), and the data is 27 of the bundle's 63 MB. `endpoints.json` (1.2 MB,
  parsed by every client's creation: about 15 ms) keeps every partition and region
  but only those services' entries.
- pydantic.v1: FastAPI imports it only to ask whether a route's types are pydantic v1
  models (about 15 ms of each cold start); without it FastAPI's check says no, which
  is the answer for every model here.

tests/infra/test_bundle.py builds a trimmed bundle and serves a request from it."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

# The SageMaker runtime client's own model, Secrets Manager (every Lambda reads its API
# keys from there), and the services of botocore's credential providers (web identity
# and role assumption call STS; SSO profiles call SSO).
BOTOCORE_SERVICES = frozenset({"sagemaker-runtime", "secretsmanager", "sts", "sso", "sso-oidc"})
LEFT_OUT_PACKAGES = ("pydantic/v1",)


def trim_bundle(out_dir: Path) -> None:
    data = out_dir / "botocore" / "data"
    if data.is_dir():
        for service in data.iterdir():
            if service.is_dir() and service.name not in BOTOCORE_SERVICES:
                shutil.rmtree(service)
        _trim_endpoints(data)
    for package in LEFT_OUT_PACKAGES:
        shutil.rmtree(out_dir / package, ignore_errors=True)


def _trim_endpoints(data: Path) -> None:
    """endpoints.json with the kept services' entries only (keyed by their models'
    endpoint prefixes, e.g. `runtime.sagemaker`)."""
    prefixes = {
        json.loads(gzip.decompress(model.read_bytes()))["metadata"]["endpointPrefix"]
        for model in data.glob("*/*/service-2.json.gz")
    }
    path = data / "endpoints.json"
    endpoints = json.loads(path.read_text())
    for partition in endpoints["partitions"]:
        services = partition["services"]
        partition["services"] = {k: v for k, v in services.items() if k in prefixes}
    path.write_text(json.dumps(endpoints, indent=1, sort_keys=True))

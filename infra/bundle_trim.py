"""What the Lambda bundle leaves out of its installed packages: the parts a proxy
Lambda never loads, which cost it start-up time and package size.

- botocore's data for the 400-odd services but the few the proxy's client can touch
  (the SageMaker runtime and control plane, Secrets Manager, and the services
  botocore's credential chain may call):
  loading a service model first lists every service directory (about 11 ms of each
  cold start), and the data is 27 of the bundle's 63 MB. `endpoints.json` (1.2 MB,
  parsed by every client's creation: about 15 ms) keeps every partition and region
  but only those services' entries.
- botocore's documentation generator: every client imports `botocore.docs.docstring`
  for the lazily generated docstrings of its methods, and that module (and its package)
  import the whole generator at once (about 38 ms of each cold start) although a
  docstring is only generated when read (`help()`). The bundle's copies import it when
  a docstring is generated (about 8 ms).
- FastAPI's OpenAPI models (`fastapi.openapi.models`): FastAPI imports them with
  `fastapi.params`, and building their pydantic schemas at import is about 40-60 ms of
  each cold start, for a document served only on `GET /openapi.json`. The bundle's
  copy defers the build (pydantic's `defer_build`) to the document's first use; the
  document is the same (tests/infra/test_bundle.py compares it).

Both are exact edits (`_DEFERRED`), checked: a package whose files differ fails the
build instead of shipping half-edited.
- pydantic.v1: FastAPI imports it only to ask whether a route's types are pydantic v1
  models (about 15 ms of each cold start); without it FastAPI's check says no, which
  is the answer for every model here.

tests/infra/test_bundle.py builds a trimmed bundle and serves a request from it."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

# The SageMaker runtime client's own model, the SageMaker control plane (the proxy wakes
# a scale-to-zero model's inference component with UpdateInferenceComponentRuntimeConfig
# and polls DescribeInferenceComponent: emd_proxy's wake), Secrets Manager (every Lambda
# reads its API keys from there), API Gateway (the key-sync Lambda manages API keys and usage plans:
# emd_proxy/usage_sync.py), and the services of botocore's credential providers (web
# identity and role assumption call STS; SSO profiles call SSO).
BOTOCORE_SERVICES = frozenset(
    {"sagemaker-runtime", "sagemaker", "secretsmanager", "apigateway", "sts", "sso", "sso-oidc"}
)
LEFT_OUT_PACKAGES = ("pydantic/v1",)

# file -> [(text, replacement)]: work deferred to its first use (see the module doc).
_DOCSTRING_IMPORTS = (
    "from botocore.docs.bcdoc.restdoc import DocumentStructure\n"
    "from botocore.docs.method import document_model_driven_method\n"
    "from botocore.docs.paginator import document_paginate_method\n"
    "from botocore.docs.waiter import document_wait_method\n"
)
_DEFERRED: dict[str, list[tuple[str, str]]] = {
    "botocore/docs/__init__.py": [
        ("from botocore.docs.service import ServiceDocumenter\n", ""),
        (
            "    # Create the root directory where all service docs live.\n",
            "    from botocore.docs.service import ServiceDocumenter\n\n"
            "    # Create the root directory where all service docs live.\n",
        ),
    ],
    "botocore/docs/docstring.py": [
        (_DOCSTRING_IMPORTS, ""),
        (
            "    def _create_docstring(self):\n",
            "    def _create_docstring(self):\n"
            "        from botocore.docs.bcdoc.restdoc import DocumentStructure\n\n",
        ),
        *(
            (
                f"        {name}(*args, **kwargs)\n",
                f"        from {module} import {name}\n\n        {name}(*args, **kwargs)\n",
            )
            for module, name in (
                ("botocore.docs.method", "document_model_driven_method"),
                ("botocore.docs.paginator", "document_paginate_method"),
                ("botocore.docs.waiter", "document_wait_method"),
            )
        ),
    ],
    "fastapi/openapi/models.py": [
        (
            '    model_config = {"extra": "allow"}\n',
            '    model_config = {"extra": "allow", "defer_build": True}\n',
        ),
        # Forced builds of the self-referencing models: done at first use instead.
        ("Schema.model_rebuild()\nOperation.model_rebuild()\nEncoding.model_rebuild()\n", ""),
    ],
}


def trim_bundle(out_dir: Path) -> None:
    data = out_dir / "botocore" / "data"
    if data.is_dir():
        for service in data.iterdir():
            if service.is_dir() and service.name not in BOTOCORE_SERVICES:
                shutil.rmtree(service)
        _trim_endpoints(data)
    for package in LEFT_OUT_PACKAGES:
        shutil.rmtree(out_dir / package, ignore_errors=True)
    _defer_imports(out_dir)


def _defer_imports(out_dir: Path) -> None:
    for name, edits in _DEFERRED.items():
        path = out_dir / name
        if not path.is_file():
            continue  # a bundle without that package
        text = path.read_text()
        for old, new in edits:
            if text.count(old) != 1:
                raise RuntimeError(
                    f"{name} is not the file infra/bundle_trim.py expects (its version changed?): "
                    f"update _DEFERRED. Missing or repeated: {old.strip()!r}"
                )
            text = text.replace(old, new)
        path.write_text(text)


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

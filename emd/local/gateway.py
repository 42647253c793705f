"""The whole local gateway (proxy + emulator + containers) started in the background of
the current process: the fixture of the integration tests and the target of bench/.
`emd serve` runs the same pieces with the proxy in the foreground."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from emd_proxy.app import create_app
from emd_proxy.auth import KeyStore
from emd_proxy.registry import Registry, RegistryEntry
from emd_proxy.settings import Settings

from .http_limits import ReadLimits
from .servers import BackgroundServers
from .stack import LocalStack

LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


# How often a held request asks the local control plane whether its model is up.
LOCAL_WAKE_POLL_SECONDS = 0.2


def point_boto3_at(emulator_url: str, control_url: str = "") -> None:
    """Local mode only: the emulator accepts any signature, so never sign with (or go
    looking for) the user's real AWS credentials. `control_url`: the local SageMaker
    control plane of scale to zero (boto3's `sagemaker` client), when it runs."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(LOCAL_AWS_ENV)
    os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = emulator_url
    if control_url:
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = control_url
        # The local control plane costs nothing to ask, and a local model loads in
        # about a second: at the deployed 5 s poll a woken model could sit idle long
        # enough for a short --scale-to-zero-after to unload it again before the held
        # request saw it up.
        os.environ.setdefault("EMD_WAKE_POLL_SECONDS", str(LOCAL_WAKE_POLL_SECONDS))
    # Both are on this machine: never through a HTTP(S)_PROXY set for the web.
    hosts = {urlsplit(url).hostname or "" for url in (emulator_url, control_url) if url}
    for name in ("NO_PROXY", "no_proxy"):
        kept = [h for h in os.environ.get(name, "").split(",") if h.strip()]
        missing = sorted(h for h in hosts if h not in kept)
        if missing:
            os.environ[name] = ",".join([*kept, *missing])
    # Nothing collects CloudWatch's embedded metric lines locally.
    os.environ.setdefault("EMD_USAGE_METRICS", "0")


@dataclass
class LocalGateway:
    base_url: str  # ends with /v1
    stack: LocalStack
    registry: Registry
    _servers: BackgroundServers
    # AWS_ENDPOINT_URL_SAGEMAKER before this gateway set it (scale to zero), put back
    # on stop: a later `sagemaker` client (moto's, in other tests) must not find a dead
    # control plane there.
    _control_env: tuple[bool, str | None] = (False, None)

    def stop(self) -> None:
        self._servers.stop()
        self.stack.stop()
        was_set, previous = self._control_env
        if was_set:
            if previous is None:
                os.environ.pop("AWS_ENDPOINT_URL_SAGEMAKER", None)
            else:
                os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = previous


def start_local_gateway(
    model_ids: Iterable[str] | None = None,
    *,
    keys: Mapping[str, Any],
    settings: Settings | None = None,
    invoke_timeout: float = 60.0,
    extra_entries: Iterable[RegistryEntry] = (),
    limits: ReadLimits | None = None,
    scale_to_zero_after: float | None = None,
    simulated_load_seconds: float = 2.0,
) -> LocalGateway:
    """`extra_entries` adds registry entries with no container behind them (e.g. an
    endpoint that does not exist, to test that path). `scale_to_zero_after` makes each
    model an inference component that unloads after that long idle (`stack.control_url`
    wakes it; `simulated_load_seconds` is echo's load time)."""
    stack = LocalStack(
        model_ids,
        invoke_timeout=invoke_timeout,
        scale_to_zero_after=scale_to_zero_after,
        simulated_load_seconds=simulated_load_seconds,
    ).start()
    control_env = (bool(stack.control_url), os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER"))
    point_boto3_at(stack.emulator_url, stack.control_url)
    registry = Registry([*stack.registry.entries(), *extra_entries])
    app = create_app(settings or Settings.from_env(), registry=registry, keys=KeyStore.static(keys))
    servers = BackgroundServers("emd-proxy")
    # The read limits `emd serve` puts on its socket (the defaults unless given).
    url = servers.add(app, lifespan=True, limits=limits or ReadLimits())
    servers.start()
    return LocalGateway(f"{url}/v1", stack, registry, servers, control_env)

"""`emd serve`: the proxy on a local port, the emulator and the local models behind it.

The proxy is the same app the Lambdas run; only its boto3 client is pointed at the
local emulator (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME) with dummy credentials, and with
`--scale-to-zero-after` its `sagemaker` client at the local control plane
(AWS_ENDPOINT_URL_SAGEMAKER)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from types import FrameType

import uvicorn
from rich.console import Console
from rich.table import Table

from emd_proxy.app import create_app
from emd_proxy.auth import KeyStore, parse_key_document
from emd_proxy.settings import Settings

from . import config
from .local.backend_process import BackendProcess
from .local.gateway import point_boto3_at
from .local.http_limits import ReadLimits
from .local.servers import bind_socket, public_uvicorn_config


def run_local(
    host: str,
    port: int,
    api_key: str | None,
    model_ids: list[str] | None,
    invoke_timeout: float,
    *,
    scale_to_zero_after: float | None = None,
    echo_load_seconds: float = 2.0,
) -> int:
    err = Console(stderr=True, soft_wrap=True)
    out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    try:
        limits = ReadLimits.from_env()
    except ValueError as exc:
        err.print(f"[red]emd serve: bad read limit in the environment: {exc}[/red]")
        return 1
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        err.print(f"[red]emd serve: cannot listen on {host}:{port}: {_reason(exc)}[/red]")
        return 1
    bound_port = sock.getsockname()[1]
    display_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{display_host}:{bound_port}/v1"

    override = api_key
    key_note = "from --api-key / EMD_API_KEY"
    try:
        if not api_key:
            api_key, created = config.local_key()
            key_note = f"{'new, ' if created else ''}saved in {config.keys_path()}"
        keys = _local_keys(override)
    except (OSError, ValueError) as exc:
        sock.close()
        err.print(f"[red]emd serve: cannot use the keys in {config.keys_path()}: {exc}[/red]")
        return 1

    try:
        stack = BackendProcess.start(
            model_ids, invoke_timeout, scale_to_zero_after, simulated_load_seconds=echo_load_seconds
        )
    except (ValueError, RuntimeError) as exc:
        sock.close()
        err.print(f"[red]emd serve: {exc}[/red]")
        return 1
    point_boto3_at(stack.emulator_url, stack.control_url)
    # Per-key limits (`limits` in keys.json) are enforced in this process; deployed,
    # API Gateway's usage plans do it. EMD_ENFORCE_KEY_LIMITS=0 turns it off.
    os.environ.setdefault("EMD_ENFORCE_KEY_LIMITS", "1")
    settings = Settings.from_env()
    app = create_app(settings, registry=stack.registry, keys=keys)
    state = {"base_url": base_url, "pid": os.getpid(), "emulator_url": stack.emulator_url}
    if stack.control_url:
        state["control_url"] = stack.control_url
    config.write_serve_state(state)
    server = _LocalServer(public_uvicorn_config(app, limits, lifespan="on"))
    # Ctrl-C or SIGTERM from the banner on stops it, also in the moment before uvicorn
    # installs its own handlers (a signal then would be lost if this process started
    # with SIGINT ignored, as background jobs do, and serving would begin anyway).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, server.handle_exit)
    _print_banner(out, base_url, api_key, key_note, stack, scale_to_zero_after=scale_to_zero_after)
    try:
        server.run(sockets=[sock])
    finally:
        stopping = time.perf_counter()
        stack.stop()
        sock.close()
        config.clear_serve_state(os.getpid())
        err.print(f"emd serve: stopped ({time.perf_counter() - stopping:.2f} s to shut down)")
    return 0


def _local_keys(override: str | None) -> KeyStore:
    """keys.json re-read every few seconds (so `emd keys --local` needs no restart),
    merged with the --api-key / EMD_API_KEY key (named `cli`). Checked once here so a
    broken file fails at start, not on the first request."""
    load = config.local_keys_loader(override)
    parse_key_document(load())
    raw_ttl = os.environ.get("EMD_KEY_CACHE_SECONDS")
    raw_stale = os.environ.get("EMD_KEY_STALE_MAX_SECONDS")
    return KeyStore(
        load,
        ttl=float(raw_ttl) if raw_ttl else config.LOCAL_KEY_TTL_SECONDS,
        stale_max=float(raw_stale) if raw_stale else 300.0,
    )


class _LocalServer(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its own shutdown, which would kill the
    process before the local models and the emulator are stopped; we exit ourselves."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def _print_banner(
    out: Console,
    base_url: str,
    key: str,
    key_note: str,
    stack: BackendProcess,
    *,
    scale_to_zero_after: float | None = None,
) -> None:
    table = Table(title="Models", title_justify="left")
    for column in ("id", "families", "engine", "endpoint", "load time"):
        table.add_column(column)
    for loaded in stack.loaded:
        entry = stack.registry.resolve(loaded.model.id)
        table.add_row(
            entry.id,
            ", ".join(entry.families),
            entry.engine,
            entry.endpoint,
            f"{loaded.load_seconds:.2f} s",
        )
    out.print(f"[bold]EMD gateway[/bold] serving at [cyan]{base_url}[/cyan]")
    out.print(f"API key: {key}  ({key_note})")
    out.print(f"SageMaker-runtime emulator: {stack.emulator_url}")
    if scale_to_zero_after is not None:
        out.print(
            f"Scale to zero: on; a model unloads after {scale_to_zero_after:g} s with no "
            "request, and the gateway wakes it on the next one "
            f"(SageMaker control plane: {stack.control_url})"
        )
    out.print(table)
    out.print(
        "Try it:\n"
        f"  curl {base_url}/chat/completions -H 'Authorization: Bearer {key}' "
        "-H 'Content-Type: application/json' "
        '-d \'{"model": "echo/local", "messages": [{"role": "user", "content": "hi"}]}\''
    )
    sys.stdout.flush()


def _reason(exc: OSError) -> str:
    if isinstance(exc, OSError) and exc.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
        return "the port is already in use (pick another with --port, or PORT=... for make)"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return exc.strerror or str(exc)

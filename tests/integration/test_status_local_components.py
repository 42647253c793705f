"""`emd status --local` with scale to zero (issue 18): it reads `control_url` from
serve.json and GET <control_url>/_emulator/components, and shows each component's
copies, state and last wake (JSON and table).

First against a stand-in `emd serve` (a small HTTP server in this process answering
/health, /v1/models and the components route with the contract's exact JSON, for
the shapes and the error paths), then against the real local control plane of the
`s2z_gateway` fixture (emd/local) through a real scale to zero and wake."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from typer.testing import CliRunner

from emd.cli import app
from emd.local.gateway import LocalGateway
from tests.integration.conftest import ECHO_COMPONENT, KEY
from tests.integration.test_serve_cli import start, wait_for_banner

runner = CliRunner()
STAND_IN_KEY = "sk-stand-in"


def card(model: str, engine: str, families: list[str]) -> dict[str, Any]:
    return {
        "id": f"{model}/local",
        "object": "model",
        "created": 0,
        "owned_by": "emd",
        "emd": {"model": model, "tag": "local", "families": families, "engine": engine},
    }


CARDS = [
    card("echo", "vllm", ["chat"]),
    card("SmolLM2-135M-Instruct", "vllm", ["chat"]),
    card("multilingual-e5-small", "tei", ["embeddings", "rerank"]),
]
# GET /_emulator/components as s2z.md fixes it: echo at zero, SmolLM2 loading, and
# e5 not a component (so its fields stay null).
COMPONENTS = {
    "components": [
        {
            "name": "emd-echo-local",
            "endpoint": "emd-echo-local",
            "status": "InService",
            "desired_copy_count": 0,
            "current_copy_count": 0,
            "instance_count": 0,
            "waking": False,
            "last_wake_seconds": 1.25,
            "idle_seconds": 42.0,
        },
        {
            "name": "emd-smollm2-135m-instruct-local",
            "endpoint": "emd-smollm2-135m-instruct-local",
            "status": "Updating",
            "desired_copy_count": 1,
            "current_copy_count": 0,
            "instance_count": 0,
            "waking": True,
            "last_wake_seconds": None,
            "idle_seconds": 0.0,
        },
    ]
}


class StandIn(BaseHTTPRequestHandler):
    components: Any = COMPONENTS  # the class attribute a test may replace

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, {"status": "ok"})
        elif self.path == "/v1/models":
            ok = self.headers.get("Authorization") == f"Bearer {STAND_IN_KEY}"
            self._answer(200 if ok else 401, {"object": "list", "data": CARDS})
        elif self.path == "/_emulator/components":
            self._answer(200, type(self).components)
        else:
            self._answer(404, {})

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    StandIn.components = COMPONENTS


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch) -> Path:
    directory = tmp_path / "emd-config"
    monkeypatch.setenv("EMD_CONFIG_DIR", str(directory))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return directory


def record_serve(config_dir: Path, base_url: str, control_url: str | None, key: str) -> None:
    """serve.json as `emd serve` writes it (its pid here is this live process)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"base_url": base_url, "pid": os.getpid()}
    if control_url is not None:
        state["control_url"] = control_url
    (config_dir / "serve.json").write_text(json.dumps(state))
    (config_dir / "keys.json").write_text(json.dumps({"default": key}))


def status_local(*args: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(app, ["status", "--local", "--json", *args])
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout), result.stderr


def rows(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in document["models"]}


SCALE_FIELDS = [
    "instance_count",
    "inference_component",
    "copy_count",
    "desired_copy_count",
    "scale_state",
    "last_wake_seconds",
    "hourly_cost_now",
    "hourly_cost_full",
]


# --- against the stand-in ----------------------------------------------------------------


def test_json_rows_carry_the_component_fields(stand_in, config_dir) -> None:
    record_serve(config_dir, f"{stand_in}/v1", stand_in, STAND_IN_KEY)
    code, document, stderr = status_local()
    assert code == 0, stderr
    assert stderr == ""
    models = rows(document)
    assert list(models["echo/local"]) == ["id", "families", "engine", *SCALE_FIELDS]
    got = {i: [m[k] for k in SCALE_FIELDS] for i, m in models.items()}
    assert got == {
        "echo/local": [0, "emd-echo-local", 0, 0, "scaled_to_zero", 1.25, None, None],
        "SmolLM2-135M-Instruct/local": [
            0,
            "emd-smollm2-135m-instruct-local",
            0,
            1,
            "waking",
            None,
            None,
            None,
        ],
        "multilingual-e5-small/local": [None] * len(SCALE_FIELDS),
    }


def test_table_shows_the_scale_column(stand_in, config_dir) -> None:
    record_serve(config_dir, f"{stand_in}/v1", stand_in, STAND_IN_KEY)
    result = runner.invoke(app, ["status", "--local"])
    assert result.exit_code == 0, result.stderr
    lines = {
        cells[0]: cells
        for line in result.stdout.splitlines()
        if line.startswith("│")
        for cells in [[c.strip() for c in line.strip("│ ").split("│")]]
    }
    assert lines["echo/local"][3] == "scaled to zero 0/0 copies, last wake 1.2s"
    assert lines["SmolLM2-135M-Instruct/local"][3] == "waking 0/1 copies"
    assert lines["multilingual-e5-small/local"][3] == "-"


def test_without_a_control_url_the_fields_are_null_and_nothing_is_said(
    stand_in, config_dir
) -> None:
    record_serve(config_dir, f"{stand_in}/v1", None, STAND_IN_KEY)
    code, document, stderr = status_local()
    assert code == 0
    assert stderr == ""
    for model in document["models"]:
        assert [model[k] for k in SCALE_FIELDS] == [None] * len(SCALE_FIELDS)
    table = runner.invoke(app, ["status", "--local"]).stdout
    assert "scale" not in table


@pytest.mark.parametrize(
    "components",
    [{"rows": []}, [1, 2], {"components": [{"no_name": 1}]}],
    ids=["no-components-key", "not-an-object", "row-without-name"],
)
def test_a_garbled_components_answer_is_a_warning(stand_in, config_dir, components) -> None:
    StandIn.components = components
    record_serve(config_dir, f"{stand_in}/v1", stand_in, STAND_IN_KEY)
    code, document, stderr = status_local()
    assert code == 0
    assert rows(document)["echo/local"]["scale_state"] is None
    [line] = stderr.strip().splitlines()
    assert line.startswith("emd status: warning: cannot read the inference components from ")


def test_an_unreachable_control_plane_is_a_warning(stand_in, config_dir) -> None:
    control_url = dead_url()
    record_serve(config_dir, f"{stand_in}/v1", control_url, STAND_IN_KEY)
    code, document, stderr = status_local()
    assert code == 0
    assert rows(document)["echo/local"]["inference_component"] is None
    assert f"cannot read the inference components from {control_url}/_emulator" in stderr


def dead_url() -> str:
    """A loopback URL where nothing listens (a port bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- against the real local control plane ------------------------------------------------


def poll(check: Callable[[], dict[str, Any] | None], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got is not None:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def echo_row() -> dict[str, Any]:
    code, document, stderr = status_local()
    assert code == 0, stderr
    return rows(document)["echo/local"]


def emd_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emd", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )


def test_status_during_and_after_a_wake_of_a_real_component(
    s2z_gateway: LocalGateway, config_dir, monkeypatch
) -> None:
    gw = s2z_gateway
    control_url = gw.stack.control_url
    components = gw.stack.components
    monkeypatch.setattr(components, "idle_after", 600.0)  # no unload of its own meanwhile
    monkeypatch.setattr(components, "simulated_load_seconds", 3.0)  # a wake to watch
    monkeypatch.delenv("EMD_API_KEY", raising=False)
    record_serve(config_dir, gw.base_url, control_url, KEY)

    # To zero through the admin route, as at the end of an idle period.
    def unload() -> dict[str, Any] | None:
        response = httpx.post(f"{control_url}/_emulator/components/{ECHO_COMPONENT}/unload")
        return response.json() if response.status_code == 200 else None

    poll(unload, "the component to unload")
    asleep = poll(
        lambda: r if (r := echo_row())["scale_state"] == "scaled_to_zero" else None,
        "scaled_to_zero",
    )
    assert asleep["inference_component"] == ECHO_COMPONENT
    assert (asleep["copy_count"], asleep["desired_copy_count"]) == (0, 0)
    assert asleep["instance_count"] == 0

    # The wake the gateway starts on a no-capacity error: one copy, through SageMaker's
    # own API on the control plane.
    sagemaker = boto3.client(
        "sagemaker",
        endpoint_url=control_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    sagemaker.update_inference_component_runtime_config(
        InferenceComponentName=ECHO_COMPONENT, DesiredRuntimeConfig={"CopyCount": 1}
    )
    waking = echo_row()
    assert waking["scale_state"] == "waking"
    assert (waking["copy_count"], waking["desired_copy_count"]) == (0, 1)
    table = runner.invoke(app, ["status", "--local"]).stdout
    assert "waking 0/1 copies" in table

    # After it: a real `emd status --local --json` process sees it serving, with the
    # wake's measured duration.
    def in_service() -> dict[str, Any] | None:
        done = emd_subprocess("status", "--local", "--json")
        assert done.returncode == 0, done.stderr
        row = rows(json.loads(done.stdout))["echo/local"]
        return row if row["scale_state"] == "in_service" else None

    awake = poll(in_service, "in_service")
    assert (awake["copy_count"], awake["desired_copy_count"], awake["instance_count"]) == (1, 1, 1)
    assert awake["last_wake_seconds"] >= 3.0
    assert awake["hourly_cost_now"] is None  # no price for a laptop


# --- a real `emd serve --scale-to-zero-after` process ------------------------------------

ECHO_LOAD_SECONDS = 5.0  # long enough for a few `emd status` processes during the wake


@pytest.fixture
def served_s2z(config_dir: Path, monkeypatch) -> Iterator[tuple[str, str, str]]:
    """(base URL, key, control URL) of `emd serve -m echo/local --scale-to-zero-after`
    with an idle period no test reaches (the admin route unloads instead)."""
    monkeypatch.delenv("EMD_API_KEY", raising=False)
    proc = start(
        config_dir,
        *("--port", "0", "--scale-to-zero-after", "600"),
        *("--echo-load-seconds", str(ECHO_LOAD_SECONDS)),
        env={"EMD_API_KEY": ""},
    )
    try:
        url, key = wait_for_banner(proc)
        control_url = json.loads((config_dir / "serve.json").read_text())["control_url"]
        yield url, key, control_url
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def test_emd_status_local_during_and_after_a_wake_by_a_streamed_request(served_s2z) -> None:
    url, key, control_url = served_s2z

    def status_row() -> dict[str, Any]:
        done = emd_subprocess("status", "--local", "--json")
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        return rows(json.loads(done.stdout))["echo/local"]

    def state_is(state: str) -> Callable[[], dict[str, Any] | None]:
        return lambda: r if (r := status_row())["scale_state"] == state else None

    assert status_row()["scale_state"] == "in_service"
    unloaded = httpx.post(f"{control_url}/_emulator/components/{ECHO_COMPONENT}/unload")
    assert unloaded.status_code == 200, unloaded.text
    asleep = poll(state_is("scaled_to_zero"), "scaled_to_zero")
    assert (asleep["copy_count"], asleep["desired_copy_count"], asleep["instance_count"]) == (
        0,
        0,
        0,
    )

    # A streamed chat request finds no copy: the gateway wakes the component and holds
    # the stream (keep-alive comments) until the model answers.
    answer: dict[str, Any] = {}

    def stream() -> None:
        with httpx.stream(
            "POST",
            f"{url}/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "model": "echo/local",
                "stream": True,
                "messages": [{"role": "user", "content": "wake up"}],
            },
            timeout=60,
            trust_env=False,
        ) as response:
            answer["status"] = response.status_code
            answer["body"] = response.read().decode()

    request = threading.Thread(target=stream)
    request.start()
    try:
        waking = poll(state_is("waking"), "waking")
        assert waking["desired_copy_count"] == 1
        assert waking["copy_count"] == 0
        table = emd_subprocess("status", "--local").stdout
        assert "waking 0/1 copies" in table
    finally:
        request.join(timeout=60)
    assert answer["status"] == 200
    assert "data: [DONE]" in answer["body"]
    assert '"error"' not in answer["body"]
    assert "wake" in answer["body"]  # echo streams the message back

    awake = poll(state_is("in_service"), "in_service")
    assert (awake["copy_count"], awake["desired_copy_count"], awake["instance_count"]) == (1, 1, 1)
    assert awake["last_wake_seconds"] >= ECHO_LOAD_SECONDS  # the simulated load, at least

"""The real Lambda bundle and the real CDK CLI.

`npx cdk synth` from the repo root (default context) bundles for arm64 / Python 3.13
with pip, and compiles its bytecode when this machine has a Python 3.13. Those
binaries cannot be imported on this x86_64 machine, so the bundle is
proven complete by inspection (a dist-info per pinned requirement, aarch64 `.so`
files), and the same bundle built for this machine is started with run.sh, with
nothing but the bundle on the import path, and answers /health.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from emd_proxy.registry import Registry
from infra import bundling
from infra.bundle_trim import BOTOCORE_SERVICES
from infra.bundling import (
    BUNDLE_PYTHON_ENV,
    CONSTRAINTS,
    HANDLER,
    LAMBDA_TARGET,
    REGISTRY_FILE,
    REQUIREMENTS,
    asset_hash,
    build_bundle,
    bytecode_python,
    host_target,
)
from infra.config import load
from tests.infra.synth import ROOT, project_context, synth

EM_AARCH64 = 183
CDK_CLI = ROOT / "node_modules" / ".bin" / "cdk"


def pins() -> dict[str, str]:
    """Normalized name -> version of everything pinned for the bundle."""
    found = {}
    for path in (REQUIREMENTS, CONSTRAINTS):
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                name, version = line.split("==")
                found[normalize(name)] = version.strip()
    return found


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        + oct(p.stat().st_mode & 0o111)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


BYTECODE_PYTHON = bytecode_python(LAMBDA_TARGET.python_version)


def assert_bytecode(bundle: Path, version: str) -> None:
    """With an interpreter of `version` here: a `.pyc` of that version for every module,
    trusted without a source check (Lambda's read-only unzipped files). Without one: no
    bytecode at all (never some other version's)."""
    sources = sorted(bundle.rglob("*.py"))
    compiled = sorted(bundle.rglob("*.pyc"))
    if bytecode_python(version) is None:
        assert compiled == []
        return
    tag = f"cpython-{version.replace('.', '')}"
    assert {p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc" for p in sources} == set(compiled)
    for pyc in compiled:
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{pyc}: not an unchecked-hash pyc"  # hash-based, unchecked


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


def default_registry_json() -> str:
    return load(project_context().get).registry_json()


# The host bundle answers for these models (any mix of families will do).
HOST_MODELS = [{"id": "Qwen3-8B"}, {"id": "bge-m3"}, {"id": "whisper-large-v3-turbo"}]


@dataclass
class Builds:
    """The bundles built besides the CLI's: each is pip and compileall in subprocesses,
    so they run beside the CLI synth instead of after it, and the three take about as
    long as the slowest rather than their sum."""

    arm64_again: Future[Path]  # the CLI's bundle again, to compare byte for byte
    host: Future[Path]  # for this machine, to start with run.sh


def _build(out_dir: Path, registry_json: str, **target: object) -> Path:
    build_bundle(out_dir, registry_json=registry_json, **target)  # type: ignore[arg-type]
    return out_dir


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builds]:
    host_registry = load({"emd:models": HOST_MODELS}.get).registry_json()
    with ThreadPoolExecutor(2, thread_name_prefix="bundle") as pool:
        yield Builds(
            arm64_again=pool.submit(
                _build, tmp_path_factory.mktemp("again") / "bundle", default_registry_json()
            ),
            host=pool.submit(
                _build,
                tmp_path_factory.mktemp("host") / "bundle",
                host_registry,
                target=host_target(),
            ),
        )


@pytest.fixture(scope="session")
def cli_synth(tmp_path_factory: pytest.TempPathFactory, builds: Builds) -> tuple[Path, str]:
    if not CDK_CLI.exists():
        pytest.skip("the CDK CLI is not installed: `make test` runs `npm ci` first")
    outdir = tmp_path_factory.mktemp("cdk-cli")
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--no-notices", "--output", str(outdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert result.returncode == 0, result.stderr
    return outdir, result.stdout + result.stderr


@pytest.fixture(scope="session")
def arm64_bundle(cli_synth: tuple[Path, str]) -> Path:
    outdir, _ = cli_synth
    manifest = json.loads((outdir / "EMD-API.assets.json").read_text())
    (asset,) = [
        f["source"]["path"]
        for f in manifest["files"].values()
        if f["source"].get("packaging") == "zip"
    ]
    return outdir / asset


def test_cdk_cli_synthesizes_the_default_context_without_warnings(
    cli_synth: tuple[Path, str],
) -> None:
    outdir, output = cli_synth
    # cdk.json ships no models: one stack, whose template the CLI prints instead of
    # "Successfully synthesized" (which it prints for several).
    assert (outdir / "EMD-API.template.json").is_file()
    noisy = [line for line in output.splitlines() if re.search(r"warn|deprecat", line, re.I)]
    # The one warning there may be: no interpreter to compile the bundle's bytecode.
    expected_noise = [] if BYTECODE_PYTHON else [n for n in noisy if "bytecode" in n]
    assert noisy == expected_noise
    config = load(project_context().get)
    expected = {config.api_stack_name} | {m.stack_name for m in config.models}
    assert {p.name.removesuffix(".template.json") for p in outdir.glob("*.template.json")} == (
        expected
    )
    report = json.loads((outdir / "validation-report.json").read_text())
    assert report["pluginReports"] == []


def test_arm64_bundle_is_complete(arm64_bundle: Path) -> None:
    dist_infos = {}
    for path in arm64_bundle.glob("*.dist-info"):
        name, version = path.name.removesuffix(".dist-info").rsplit("-", 1)
        dist_infos[normalize(name)] = version
    for name, version in pins().items():
        assert dist_infos.get(name) == version, f"{name}=={version} missing from the bundle"

    shared_objects = list(arm64_bundle.rglob("*.so"))
    assert any(p.parent.name == "pydantic_core" for p in shared_objects)
    for so in shared_objects:
        assert elf_machine(so) == EM_AARCH64, so
        assert f"cpython-{LAMBDA_TARGET.python_version.replace('.', '')}-aarch64" in so.name, so

    handler = arm64_bundle / HANDLER
    assert os.access(handler, os.X_OK)
    assert "emd_proxy.main:create_app" in handler.read_text()
    assert (arm64_bundle / "emd_proxy" / "main.py").is_file()
    assert not (arm64_bundle / "bin").exists()  # host shebangs stay out
    # Trimmed (infra/bundle_trim.py): botocore's data for the proxy's services only,
    # no pydantic.v1 (test_host_bundle_starts_with_run_sh serves from such a bundle).
    services = {p.name for p in (arm64_bundle / "botocore" / "data").iterdir() if p.is_dir()}
    assert services == BOTOCORE_SERVICES
    assert not (arm64_bundle / "pydantic" / "v1").exists()
    assert_bytecode(arm64_bundle, LAMBDA_TARGET.python_version)

    registry_json = (arm64_bundle / REGISTRY_FILE).read_text()
    assert registry_json == default_registry_json()
    ids = {e.id for e in Registry.from_json(registry_json).entries()}
    assert ids == {m.public_id for m in load(project_context().get).models}


def test_asset_hash_comes_from_the_inputs(arm64_bundle: Path, tmp_path: Path) -> None:
    """A synth that skips bundling names the same asset as the CLI's real bundle: the
    hash depends on the bundle's inputs only, so fast tests see the real asset key."""
    fast = synth(tmp_path, models=project_context()["emd:models"], region=None)
    keys = {
        f["Properties"]["Code"]["S3Key"]
        for f in fast.api["Resources"].values()
        if f["Type"] == "AWS::Lambda::Function"
    }
    assert keys == {arm64_bundle.name.removeprefix("asset.") + ".zip"}
    # ...and it changes with the registry (a new model must update the Lambdas).
    # cdk.json ships no models, so compare with a registry that has some.
    with_models = load({"emd:models": HOST_MODELS}.get).registry_json()
    assert asset_hash(with_models) != asset_hash(default_registry_json())


def _fake_python(directory: Path, version: str) -> str:
    """An "interpreter" that reports `version` (all the bundler asks it before compiling)."""
    directory.mkdir(parents=True)
    python = directory / f"python{LAMBDA_TARGET.python_version}"
    python.write_text(f"#!/bin/sh\necho {version}\n")
    python.chmod(0o755)
    return str(python)


def test_asset_hash_ignores_the_interpreters_patch_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two developers whose Python 3.13 differ in the patch version (their bytecode has
    the same format: the pyc magic number changes with the minor version only) build
    the same asset, so a deploy from either changes no Lambda. A bundle with no
    bytecode at all is another asset."""
    registry_json = default_registry_json()
    hashes = set()
    for version in ("3.13.1", "3.13.9"):
        monkeypatch.setenv(BUNDLE_PYTHON_ENV, _fake_python(tmp_path / version, version))
        assert bytecode_python(LAMBDA_TARGET.python_version)
        hashes.add(asset_hash(registry_json))
    assert len(hashes) == 1
    monkeypatch.setattr(bundling, "bytecode_python", lambda version: None)
    assert asset_hash(registry_json) not in hashes


def test_asset_hash_ignores_where_and_when_the_sources_were_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another checkout (another path, every file written at another time, local
    __pycache__ beside the sources) hashes the same; a changed source does not."""
    registry_json = default_registry_json()
    before = asset_hash(registry_json)
    copy = tmp_path / "elsewhere" / "lambdas"
    shutil.copytree(bundling.LAMBDAS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    long_ago = time.time() - 400 * 24 * 3600
    for path in copy.rglob("*"):
        os.utime(path, (long_ago, long_ago))
    (copy / "emd_proxy" / "__pycache__").mkdir(exist_ok=True)
    (copy / "emd_proxy" / "__pycache__" / "main.cpython-313.pyc").write_bytes(b"stale")
    for name, path in {
        "LAMBDAS_DIR": copy,
        "REQUIREMENTS": copy / bundling.REQUIREMENTS.name,
        "CONSTRAINTS": copy / bundling.CONSTRAINTS.name,
        "RUN_SCRIPT": copy / bundling.RUN_SCRIPT.name,
        "PACKAGE": copy / bundling.PACKAGE.name,
    }.items():
        monkeypatch.setattr(bundling, name, path)
    assert asset_hash(registry_json) == before
    main = copy / "emd_proxy" / "main.py"
    main.write_text(main.read_text() + "\n# changed\n")
    assert asset_hash(registry_json) != before


def test_bundle_is_reproducible_and_small(arm64_bundle: Path, builds: Builds) -> None:
    assert tree_digest(builds.arm64_again.result()) == tree_digest(arm64_bundle)

    unzipped = sum(p.stat().st_size for p in arm64_bundle.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(arm64_bundle.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(arm64_bundle).as_posix())
    zipped = len(buffer.getvalue())
    print(f"Lambda bundle: {unzipped / 1e6:.1f} MB unzipped, {zipped / 1e6:.1f} MB zipped")
    # Lambda's limit is 250 MB unzipped; this guards against a dependency ballooning.
    assert unzipped < 100e6
    assert zipped < 50e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_host_bundle_starts_with_run_sh(tmp_path: Path, builds: Builds) -> None:
    bundle = builds.host.result()
    assert_bytecode(bundle, host_target().python_version)  # this interpreter compiled it

    # `python` for run.sh: this interpreter without any site-packages (-S), so the
    # bundle (run.sh puts it on PYTHONPATH) is all there is to import from.
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "python"
    base_python = getattr(sys, "_base_executable", sys.executable)
    shim.write_text(f'#!/bin/sh\nexec "{base_python}" -S "$@"\n')
    shim.chmod(0o755)
    isolated = subprocess.run(
        [str(shim), "-c", "import fastapi"], capture_output=True, env={}, check=False
    )
    assert isolated.returncode != 0, "the shim must not see the project's packages"

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"default": "sk-bundle-test"}))
    port = free_port()
    env = {
        "PATH": f"{shim_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(tmp_path),
        "PORT": str(port),
        "EMD_FAMILIES": "models",
        "EMD_REGISTRY_FILE": str(bundle / REGISTRY_FILE),
        "EMD_API_KEYS_FILE": str(keys),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    assert shutil.which("sh")
    process = subprocess.Popen(
        [str(bundle / HANDLER)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, body = get(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                time.sleep(0.1)
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        status, body = get(
            f"http://127.0.0.1:{port}/v1/models",
            {"Authorization": "Bearer sk-bundle-test"},
        )
        assert status == 200
        ids = {m["id"] for m in json.loads(body)["data"]}
        assert ids == {"Qwen3-8B/dev", "bge-m3/dev", "whisper-large-v3-turbo/dev"}
        # The models Lambda mounts no family route: chat is API Gateway's to route.
        status, _ = get(
            f"http://127.0.0.1:{port}/v1/models/Qwen3-8B/dev",
            {"Authorization": "Bearer sk-bundle-test"},
        )
        assert status == 200
        # The OpenAPI document, built late by the bundle's deferred FastAPI models
        # (infra/bundle_trim.py), is the one the project's own packages build.
        status, body = get(f"http://127.0.0.1:{port}/openapi.json")
        assert status == 200
        venv = subprocess.run(
            [sys.executable, "-c", _OPENAPI_DOCUMENT],
            env={**os.environ, **{k: v for k, v in env.items() if k.startswith(("EMD_", "AWS_"))}},
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(body) == json.loads(venv.stdout)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_OPENAPI_DOCUMENT = "import json, emd_proxy.main as m; print(json.dumps(m.create_app().openapi()))"

_DOCSTRING = """
import sys, botocore.session
client = botocore.session.get_session().create_client(
    "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
)
assert "botocore.docs.service" not in sys.modules, "the docs generator was imported early"
print(str(client.invoke_endpoint.__doc__))
"""


def test_trimmed_botocore_still_writes_docstrings(builds: Builds) -> None:
    """The bundle's botocore imports its docs generator only when a docstring is read
    (infra/bundle_trim.py), and the docstring is still generated then."""
    bundle = builds.host.result()
    base_python = getattr(sys, "_base_executable", sys.executable)
    env = {"PYTHONPATH": str(bundle), "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [base_python, "-S", "-c", _DOCSTRING], env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "InvokeEndpoint" in run.stdout or "inference" in run.stdout.lower()


def test_the_bytecode_interpreter_is_the_runtimes_version_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.delenv("EMD_BUNDLE_PYTHON", raising=False)
    assert bytecode_python(this) == sys.executable
    # Nothing of that version anywhere: None, and the bundle ships source only.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert bytecode_python("3.99") is None
    # Named explicitly: used when it is that version, refused when not.
    monkeypatch.setenv("EMD_BUNDLE_PYTHON", sys.executable)
    assert bytecode_python(this) == sys.executable
    with pytest.raises(RuntimeError, match=r"is not a Python 3\.99"):
        bytecode_python("3.99")


def test_a_bundle_without_a_bytecode_interpreter_ships_source_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from infra.bundling import Target, compile_bytecode

    (tmp_path / "m.py").write_text("X = 1\n")
    monkeypatch.delenv("EMD_BUNDLE_PYTHON", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert compile_bytecode(tmp_path, Target("manylinux2014_aarch64", "3.99")) is False
    assert "no Python 3.99 found to compile the Lambda bundle's bytecode" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.pyc"))


_ENDPOINT_URLS = """
import json, botocore.session
urls = {}
for region in ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"):
    client = botocore.session.get_session().create_client(
        "sagemaker-runtime", region_name=region, aws_access_key_id="x", aws_secret_access_key="y"
    )
    urls[region] = client.meta.endpoint_url
print(json.dumps(urls))
"""


def test_trimmed_botocore_resolves_endpoints_as_the_full_one(builds: Builds) -> None:
    """The bundle's trimmed botocore data (infra/bundle_trim.py) gives the SageMaker
    runtime client the endpoints the full data gives, in every partition."""
    bundle = builds.host.result()
    base_python = getattr(sys, "_base_executable", sys.executable)
    env = {"PYTHONPATH": str(bundle), "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}
    trimmed = subprocess.run(
        [base_python, "-S", "-c", _ENDPOINT_URLS],
        env=env,
        capture_output=True,
        text=True,
        check=False,  # the assert shows stderr
    )
    assert trimmed.returncode == 0, trimmed.stderr
    full = subprocess.run(
        [sys.executable, "-c", _ENDPOINT_URLS],
        env={**os.environ, "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(trimmed.stdout) == json.loads(full.stdout)
    assert json.loads(trimmed.stdout)["cn-north-1"].endswith(".amazonaws.com.cn")


_READ_SECRET = """
import json, sys
from emd_proxy.auth import KeyStore
store = KeyStore.from_secret(sys.argv[1])
print(json.dumps(sorted(k.principal.name for k in store.keys())))
"""


def test_trimmed_bundle_reads_the_key_secret(builds: Builds) -> None:
    """Every deployed Lambda reads its API keys from Secrets Manager with the bundle's
    own botocore: the trimmed data must keep that service's model (a bundle without
    it answered every request with 'API keys are unavailable')."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        aws = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        secrets = boto3.client(
            "secretsmanager",
            endpoint_url=aws["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        secrets.create_secret(Name="emd-keys", SecretString=json.dumps({"default": "k" * 32}))
        bundle = builds.host.result()
        base_python = getattr(sys, "_base_executable", sys.executable)
        env = {"PYTHONPATH": str(bundle), "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}
        read = subprocess.run(
            [base_python, "-S", "-c", _READ_SECRET, "emd-keys"],
            env={**env, **aws, "NO_PROXY": "127.0.0.1"},
            capture_output=True,
            text=True,
            check=False,  # the assert shows stderr
        )
    finally:
        server.stop()
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout) == ["default"]


_WAKE_COMPONENT = """
import json, botocore.session
from botocore.awsrequest import AWSResponse

class Raw:
    def __init__(self, body):
        self.body = body
    def stream(self, **kwargs):
        yield self.body

sent = {}
def answer(request, **kwargs):
    sent.update(url=request.url, target=request.headers["X-Amz-Target"].decode(),
                body=json.loads(request.body))
    arn = "arn:aws:sagemaker:us-east-1:123456789012:inference-component/emd-qwen3-8b-dev"
    body = json.dumps({"InferenceComponentArn": arn}).encode()
    return AWSResponse(request.url, 200, {}, Raw(body))

client = botocore.session.get_session().create_client(
    "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
)
client.meta.events.register("before-send.sagemaker.UpdateInferenceComponentRuntimeConfig", answer)
out = client.update_inference_component_runtime_config(
    InferenceComponentName="emd-qwen3-8b-dev", DesiredRuntimeConfig={"CopyCount": 1}
)
print(json.dumps({"sent": sent, "arn": out["InferenceComponentArn"],
                  "describe": sorted(client.meta.service_model.operation_model(
                      "DescribeInferenceComponent").output_shape.members)}))
"""


def test_trimmed_bundle_can_wake_an_inference_component(builds: Builds) -> None:
    """The proxy wakes a scale-to-zero model with the bundle's own botocore: the trimmed
    data must keep the SageMaker control plane's model and endpoint rules, so the client
    is created and UpdateInferenceComponentRuntimeConfig serialized as SageMaker's JSON
    protocol (the request is answered in process, before it would be sent)."""
    bundle = builds.host.result()
    base_python = getattr(sys, "_base_executable", sys.executable)
    env = {"PYTHONPATH": str(bundle), "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [base_python, "-S", "-c", _WAKE_COMPONENT],
        env=env,
        capture_output=True,
        text=True,
        check=False,  # the assert shows stderr
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["sent"] == {
        "url": "https://api.sagemaker.us-east-1.amazonaws.com/",
        "target": "SageMaker.UpdateInferenceComponentRuntimeConfig",
        "body": {
            "InferenceComponentName": "emd-qwen3-8b-dev",
            "DesiredRuntimeConfig": {"CopyCount": 1},
        },
    }
    assert result["arn"].endswith(":inference-component/emd-qwen3-8b-dev")
    assert {"InferenceComponentStatus", "RuntimeConfig"} <= set(result["describe"])


_AUTHORIZE_AND_SYNC = """
import json, sys
from emd_proxy import authorizer, usage_sync
event = {"methodArn": "arn:aws:execute-api:us-east-1:1:abc/prod/GET/v1/models",
         "headers": {"Authorization": "Bearer " + sys.argv[1]}}
allowed = authorizer.handler(event, None)
report = usage_sync.handler({"action": "sync"}, None)
print(json.dumps({"principal": allowed["principalId"], "usage_key": allowed["usageIdentifierKey"],
                  "report": report}))
"""


def test_trimmed_bundle_runs_the_authorizer_and_the_key_sync(builds: Builds) -> None:
    """The authorizer and the key-sync Lambda run from the shared bundle with its own
    trimmed botocore (which must keep the apigateway model), against a moto server."""
    import boto3
    from moto.server import ThreadedMotoServer

    from emd_proxy.authorizer import usage_key

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        aws = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        clients = {
            name: boto3.client(
                name,
                endpoint_url=aws["AWS_ENDPOINT_URL"],
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            for name in ("secretsmanager", "apigateway")
        }
        key = "k" * 48
        clients["secretsmanager"].create_secret(
            Name="emd-keys-authorizer", SecretString=json.dumps({"default": key})
        )
        apigw = clients["apigateway"]
        api = apigw.create_rest_api(name="emd")["id"]
        root = apigw.get_resources(restApiId=api)["items"][0]["id"]
        apigw.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
        apigw.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
        apigw.create_deployment(restApiId=api, stageName="prod")
        bundle = builds.host.result()
        base_python = getattr(sys, "_base_executable", sys.executable)
        env = {
            "PYTHONPATH": str(bundle),
            "HOME": "/nonexistent",
            "PATH": "/usr/bin:/bin",
            "NO_PROXY": "127.0.0.1",
            "EMD_API_KEY_SECRET_ID": "emd-keys-authorizer",
            "EMD_PREFIX": "EMDBundle",
            "EMD_REST_API_ID": api,
            "EMD_STAGE": "prod",
            "EMD_DEFAULT_KEY_LIMITS": json.dumps({"rate": 10, "burst": 20}),
            **aws,
        }
        run = subprocess.run(
            [base_python, "-S", "-c", _AUTHORIZE_AND_SYNC, key],
            env=env,
            capture_output=True,
            text=True,
            check=False,  # the assert shows stderr
        )
        assert run.returncode == 0, run.stderr
        answer = json.loads(run.stdout.strip().splitlines()[-1])
        # moto servers in one process share their state: only this test's prefix.
        (api_key,) = [
            k
            for k in apigw.get_api_keys(includeValues=True)["items"]
            if k.get("tags", {}).get("emd:prefix") == "EMDBundle"
        ]
    finally:
        server.stop()
    assert answer["principal"] == "default"
    assert answer["usage_key"] == usage_key("EMDBundle", key) == api_key["value"]
    assert answer["report"]["created_keys"] == ["EMDBundle-default"]

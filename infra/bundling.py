"""The Lambda code asset: lambdas/ with its dependencies, built without Docker.

`build_bundle` installs the pinned requirements with pip for the Lambda platform
(`--platform manylinux2014_aarch64 --python-version 3.13 --only-binary=:all:`), then
adds the emd_proxy package, the run.sh handler and the registry JSON, and compiles the
bytecode with a Python of the runtime's version when this machine has one (see
`bytecode_python`). CDK calls it through `LocalBundler` (an `ILocalBundling`), so
synthesis needs no Docker; tests build the same bundle for the host platform to start
it for real.

Bytecode: Lambda unpacks the bundle read-only, so without `.pyc` files every cold start
compiles every module it imports (fastapi, pydantic, botocore, aiohttp ...): about
1.1 s of imports instead of 0.5 s (this project's proxy on Python 3.13). The files are
compiled with `--invalidation-mode unchecked-hash`, so Python trusts them without
comparing source timestamps (which zip files round to 2 s).

The asset hash is computed from the bundle's inputs (not its output), so skipping
bundling in tests (`aws:cdk:bundling-stacks: []`) keeps the same hash, and CDK reuses
an already-built bundle when nothing changed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import jsii

from .bundle_trim import trim_bundle

LAMBDAS_DIR = Path(__file__).resolve().parents[1] / "lambdas"
REQUIREMENTS = LAMBDAS_DIR / "requirements.txt"
CONSTRAINTS = LAMBDAS_DIR / "constraints.txt"
RUN_SCRIPT = LAMBDAS_DIR / "run.sh"
PACKAGE = LAMBDAS_DIR / "emd_proxy"
HANDLER = "run.sh"
REGISTRY_FILE = "emd_registry.json"
# Paths never copied into a bundle (nor hashed): caches of local runs.
EXCLUDE = ["**/__pycache__", "**/*.pyc", ".pytest_cache"]
# Bumped when build_bundle changes what it writes, so old bundles are not reused.
# 3-8: trimmed (bundle_trim.py; 5: secretsmanager, 6: deferred work, 7: apigateway,
# 8: the sagemaker control plane).
_BUNDLE_FORMAT = "8"


@dataclass(frozen=True)
class Target:
    """Where the bundle runs: a pip platform tag and a CPython version."""

    platform: str
    python_version: str


# arm64 Lambda on the python3.13 runtime, not the newest (3.14): bytecode for the
# bundle needs an interpreter of the runtime's version at synth, and 3.13 is the one
# development machines and CI have (pyenv, uv, distributions) while 3.14 mostly is not;
# a bundle without bytecode costs every cold start about a second. Every pinned
# package publishes cp313 aarch64 wheels. The three constants change together.
LAMBDA_TARGET = Target(platform="manylinux2014_aarch64", python_version="3.13")
LAMBDA_RUNTIME = cdk.aws_lambda.Runtime.PYTHON_3_13
LAMBDA_ARCHITECTURE = cdk.aws_lambda.Architecture.ARM_64
# The same runtime on x86_64: for the China regions, where the Lambda Web Adapter
# layer is published for x86_64 only (constructs/proxy_function.py).
LAMBDA_TARGET_X86 = Target(platform="manylinux2014_x86_64", python_version="3.13")
LAMBDA_TASK_ROOT = "/var/task"  # where Lambda unpacks the bundle
# An interpreter to compile the bundle's bytecode with (else one is looked for).
BUNDLE_PYTHON_ENV = "EMD_BUNDLE_PYTHON"


def host_target() -> Target:
    """This machine, for building a bundle a test can start."""
    return Target(
        platform=f"manylinux2014_{platform.machine()}",
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
    )


def bytecode_python(version: str) -> str | None:
    """A Python `version` interpreter to compile the bundle's bytecode with:
    $EMD_BUNDLE_PYTHON (which must be that version), this interpreter, `pythonX.Y` on
    PATH, or one installed by pyenv or uv; None when there is none."""
    chosen = os.environ.get(BUNDLE_PYTHON_ENV)
    if chosen:
        if _minor(_version_of(chosen)) != version:
            raise RuntimeError(f"{BUNDLE_PYTHON_ENV}={chosen} is not a Python {version}")
        return chosen
    home = Path.home()
    pyenv = Path(os.environ.get("PYENV_ROOT", home / ".pyenv")) / "versions"
    uv = home / ".local" / "share" / "uv" / "python"
    candidates = [
        sys.executable,
        shutil.which(f"python{version}"),
        *sorted(map(str, pyenv.glob(f"{version}.*/bin/python{version}")), reverse=True),
        *sorted(map(str, uv.glob(f"cpython-{version}.*/bin/python{version}")), reverse=True),
    ]
    for candidate in candidates:
        if candidate and _minor(_version_of(candidate)) == version:
            return candidate
    return None


@functools.cache
def _version_of(python: str) -> str | None:
    """An interpreter's full version, or None when it does not run (a pyenv shim of a
    version that is not selected exits non-zero)."""
    try:
        result = subprocess.run(  # noqa: S603 (an interpreter path, no shell)
            [python, "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _minor(version: str | None) -> str | None:
    return ".".join(version.split(".")[:2]) if version else None


def _package_files() -> list[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def asset_hash(registry_json: str, target: Target = LAMBDA_TARGET) -> str:
    """SHA-256 of everything that goes into the bundle: the bundle format, the target,
    whether it carries bytecode, the pinned requirements and the package's sources
    (contents and paths, never mtimes), and the registry."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("format", _BUNDLE_FORMAT.encode())
    add("target", f"{target.platform} {target.python_version}".encode())
    # A bundle built where no interpreter could compile its bytecode is another asset.
    # Only whether there is bytecode counts, never the compiling interpreter's patch
    # version (3.13.1 or 3.13.9 write the same pyc format, magic number included: it
    # changes with the minor version only), nor the time or the machine: else every
    # developer's synth would name another asset and redeploy every Lambda.
    add("bytecode", "compiled" if bytecode_python(target.python_version) else "none")
    for path in (REQUIREMENTS, CONSTRAINTS, RUN_SCRIPT, *_package_files()):
        add(path.relative_to(LAMBDAS_DIR).as_posix(), path.read_bytes())
    add("registry", registry_json.encode())
    return digest.hexdigest()


def pip_install_command(out_dir: Path, target: Target) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--target",
        str(out_dir),
        "--platform",
        target.platform,
        "--implementation",
        "cp",
        "--python-version",
        target.python_version,
        # Wheels only: nothing is compiled here for a machine this is not.
        "--only-binary=:all:",
        # .pyc files would be for this interpreter, not the Lambda's.
        "--no-compile",
        "--requirement",
        str(REQUIREMENTS),
        "--constraint",
        str(CONSTRAINTS),
    ]


def build_bundle(out_dir: Path, *, registry_json: str, target: Target = LAMBDA_TARGET) -> None:
    """Writes the complete Lambda code into `out_dir` (which must be empty or absent)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(  # noqa: S603 (fixed argv, no shell)
        pip_install_command(out_dir, target),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1"},
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"pip could not build the Lambda bundle for {target.platform} / Python "
            f"{target.python_version} (it needs PyPI, or your pip index):\n"
            f"{result.stderr.strip()[-4000:]}"
        )
    # Console scripts carry this machine's interpreter path in their shebang: useless
    # in Lambda, and they would make the bundle differ between machines.
    shutil.rmtree(out_dir / "bin", ignore_errors=True)
    for record in out_dir.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(line for line in lines if not line.startswith("../../bin/")))
    shutil.copytree(
        PACKAGE, out_dir / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    handler = out_dir / HANDLER
    shutil.copyfile(RUN_SCRIPT, handler)
    # LWA's bootstrap execs the handler, so it must be executable in the zip.
    handler.chmod(0o755)
    (out_dir / REGISTRY_FILE).write_text(registry_json)
    trim_bundle(out_dir)
    compile_bytecode(out_dir, target)


def compile_bytecode(out_dir: Path, target: Target) -> bool:
    """`.pyc` files for the whole bundle, by an interpreter of the target's version;
    False (with a warning) when this machine has none."""
    python = bytecode_python(target.python_version)
    if python is None:
        print(
            f"warning: no Python {target.python_version} found to compile the Lambda "
            "bundle's bytecode, so every cold start will compile its imports (about "
            f"0.6 s more). Install Python {target.python_version} (pyenv, uv or your "
            f"distribution) or point {BUNDLE_PYTHON_ENV} at one, then synthesize again.",
            file=sys.stderr,
        )
        return False
    result = subprocess.run(  # noqa: S603 (fixed argv, no shell)
        [
            python,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            # Tracebacks name the files where Lambda unpacks them, not this build folder.
            "-d",
            LAMBDA_TASK_ROOT,
            str(out_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
        # One process and a fixed hash seed: the same bundle gives the same bytes (in
        # parallel, or with set constants in another order, marshal's output varies).
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"compiling the Lambda bundle's bytecode failed:\n{result.stdout[-4000:]}"
        )
    return True


@jsii.implements(cdk.ILocalBundling)
class LocalBundler:
    """CDK's hook: bundle on this machine instead of in a Docker container."""

    def __init__(self, *, registry_json: str, target: Target = LAMBDA_TARGET) -> None:
        self._registry_json = registry_json
        self._target = target

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_: object) -> bool:
        build_bundle(Path(output_dir), registry_json=self._registry_json, target=self._target)
        return True


def lambda_code(registry_json: str, target: Target = LAMBDA_TARGET) -> cdk.aws_lambda.AssetCode:
    """The one code asset every family Lambda shares."""
    return cdk.aws_lambda.Code.from_asset(
        str(LAMBDAS_DIR),
        exclude=EXCLUDE,
        asset_hash=asset_hash(registry_json, target),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            # Never pulled: LocalBundler always bundles (or raises). CDK requires an image.
            image=LAMBDA_RUNTIME.bundling_image,
            local=LocalBundler(registry_json=registry_json, target=target),
        ),
    )

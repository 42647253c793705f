"""The Lambda code asset: lambdas/ with its dependencies, built without Docker.

`build_bundle` installs the pinned requirements with pip for the Lambda platform
(`--platform manylinux2014_aarch64 --python-version 3.14 --only-binary=:all:`), then
adds the emd_proxy package, the run.sh handler and the registry JSON. CDK calls it
through `LocalBundler` (an `ILocalBundling`), so synthesis needs no Docker; tests
build the same bundle for the host platform to start it for real.

The asset hash is computed from the bundle's inputs (not its output), so skipping
bundling in tests (`aws:cdk:bundling-stacks: []`) keeps the same hash, and CDK reuses
an already-built bundle when nothing changed.
"""

from __future__ import annotations

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
_BUNDLE_FORMAT = "1"


@dataclass(frozen=True)
class Target:
    """Where the bundle runs: a pip platform tag and a CPython version."""

    platform: str
    python_version: str


# arm64 Lambda on the python3.14 runtime: the newest runtime for which every pinned
# package (pydantic-core, uvloop, httptools) publishes aarch64 wheels. The three
# constants change together.
LAMBDA_TARGET = Target(platform="manylinux2014_aarch64", python_version="3.14")
LAMBDA_RUNTIME = cdk.aws_lambda.Runtime.PYTHON_3_14
LAMBDA_ARCHITECTURE = cdk.aws_lambda.Architecture.ARM_64


def host_target() -> Target:
    """This machine, for building a bundle a test can start."""
    return Target(
        platform=f"manylinux2014_{platform.machine()}",
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
    )


def _package_files() -> list[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def asset_hash(registry_json: str, target: Target = LAMBDA_TARGET) -> str:
    """SHA-256 of everything that goes into the bundle."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("format", _BUNDLE_FORMAT.encode())
    add("target", f"{target.platform} {target.python_version}".encode())
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


@jsii.implements(cdk.ILocalBundling)
class LocalBundler:
    """CDK's hook: bundle on this machine instead of in a Docker container."""

    def __init__(self, *, registry_json: str, target: Target = LAMBDA_TARGET) -> None:
        self._registry_json = registry_json
        self._target = target

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_: object) -> bool:
        build_bundle(Path(output_dir), registry_json=self._registry_json, target=self._target)
        return True


def lambda_code(registry_json: str) -> cdk.aws_lambda.AssetCode:
    """The one code asset every family Lambda shares."""
    return cdk.aws_lambda.Code.from_asset(
        str(LAMBDAS_DIR),
        exclude=EXCLUDE,
        asset_hash=asset_hash(registry_json),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            # Never pulled: LocalBundler always bundles (or raises). CDK requires an image.
            image=LAMBDA_RUNTIME.bundling_image,
            local=LocalBundler(registry_json=registry_json),
        ),
    )

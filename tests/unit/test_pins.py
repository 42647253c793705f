"""The Lambda bundle (lambdas/requirements.txt) and the project (pyproject.toml) pin the
same versions of the packages they share."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(requirement: str) -> tuple[str, str]:
    """`uvicorn[standard]==0.54.0` -> ("uvicorn", "==0.54.0")."""
    match = _REQUIREMENT.match(requirement.split(";", maxsplit=1)[0].strip())
    assert match, requirement
    return normalize(match.group(1)), match.group(3).replace(" ", "")


def lambda_pins() -> dict[str, str]:
    pins = {}
    for raw in (ROOT / "lambdas" / "requirements.txt").read_text().splitlines():
        line = raw.split("#", maxsplit=1)[0].strip()
        if line:
            name, spec = parse(line)
            pins[name] = spec
    return pins


def project_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(parse(requirement) for requirement in project["dependencies"])


def test_parse() -> None:
    assert parse("uvicorn[standard]==0.54.0") == ("uvicorn", "==0.54.0")
    assert parse("Aws_Lambda.Powertools == 3.37.0") == ("aws-lambda-powertools", "==3.37.0")


def test_every_lambda_requirement_is_pinned_exactly() -> None:
    pins = lambda_pins()
    assert pins, "lambdas/requirements.txt lists nothing"
    for name, spec in pins.items():
        assert re.fullmatch(r"==[\w.]+", spec), f"{name} is not pinned with ==: {spec!r}"


def test_shared_pins_agree() -> None:
    lam, project = lambda_pins(), project_pins()
    shared = lam.keys() & project.keys()
    # The proxy's core packages are in both; an empty overlap would mean a parsing bug.
    assert {"fastapi", "uvicorn", "pydantic", "botocore", "aiohttp"} <= shared
    mismatched = {name: (lam[name], project[name]) for name in shared if lam[name] != project[name]}
    assert not mismatched, f"lambdas/requirements.txt vs pyproject.toml: {mismatched}"

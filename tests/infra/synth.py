"""Synthesizes the app the way app.py does, into a directory, and reads the result."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import assertions

from infra.app import build
from infra.config import DeployConfig

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"


def project_context() -> dict[str, Any]:
    """cdk.json's context: the feature flags the real app runs with."""
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


@dataclass
class Synth:
    config: DeployConfig
    outdir: Path

    def template(self, stack_name: str) -> dict[str, Any]:
        return json.loads((self.outdir / f"{stack_name}.template.json").read_text())

    def assertions(self, stack_name: str) -> assertions.Template:
        return assertions.Template.from_json(self.template(stack_name))

    @property
    def api(self) -> dict[str, Any]:
        return self.template(self.config.api_stack_name)

    def stack_names(self) -> list[str]:
        return sorted(
            p.name.removesuffix(".template.json") for p in self.outdir.glob("*.template.json")
        )

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))

    def validation_report(self) -> dict[str, Any]:
        return json.loads((self.outdir / "validation-report.json").read_text())


def synth(
    outdir: Path,
    *,
    models: list[dict[str, Any]] | str,
    region: str | None = "us-east-1",
    bundle: bool = False,
    context: dict[str, Any] | None = None,
) -> Synth:
    ctx = project_context()
    ctx["emd:models"] = models
    ctx.update(context or {})
    if not bundle:
        ctx["aws:cdk:bundling-stacks"] = []
    app = cdk.App(context=ctx, outdir=str(outdir))
    config = build(app, env=cdk.Environment(account=ACCOUNT, region=region))
    app.synth()
    return Synth(config=config, outdir=outdir)

"""CDK app: builds the stacks from the `emd:*` context of cdk.json (or `-c`).

The account and region come from the CLI's environment (your AWS profile) when it
has one; a known region lets synth check that every chosen image exists there.
"""

import os
import sys

# jsii prints a Node end-of-life banner on every synth under Node 20, which the CDK
# CLI pinned in package.json still supports; set it before aws_cdk starts jsii.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk

from infra.app import build
from infra.config import ConfigError
from infra.images import CatalogError

app = cdk.App()
try:
    build(
        app,
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
except (ConfigError, CatalogError) as exc:
    sys.exit(f"emd: {exc}")
app.synth()

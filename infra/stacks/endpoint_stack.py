"""`<prefix>-Endpoint-<group>`: a SageMaker endpoint shared by several model stacks'
inference components (`emd:endpoints`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from ..config import ConfigError, ModelDeployment, SharedEndpoint
from ..constructs.shared_endpoint import SharedModelEndpoint
from ..images import CatalogError


class EndpointStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        *,
        shared: SharedEndpoint,
        members: Sequence[ModelDeployment],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            shared.stack_name,
            description=f"EMD gateway shared endpoint {shared.name} ({shared.instance.name}): "
            + ", ".join(m.public_id for m in members),
            **kwargs,
        )
        self.shared = shared
        try:
            self.shared_endpoint = SharedModelEndpoint(
                self, "Endpoint", shared=shared, members=[m.catalog for m in members]
            )
        except CatalogError as exc:
            raise ConfigError(f"emd:endpoints.{shared.name} in {self.region}: {exc}") from exc
        outputs = {
            "EndpointName": (shared.endpoint_name, "SageMaker endpoint name"),
            "InstanceType": (shared.instance.name, "SageMaker instance type"),
            "MaxInstances": (str(shared.max_instances), "instances at most"),
            "Members": (
                ",".join(m.public_id for m in members),
                "models served as inference components (each in its own model stack)",
            ),
        }
        for name, (value, description) in outputs.items():
            cdk.CfnOutput(self, name, value=value, description=description)

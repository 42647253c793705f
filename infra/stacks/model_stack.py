"""`<prefix>-Model-<model>-<tag>`: one catalog model on a SageMaker endpoint (its own,
or as an inference component on a shared one, `<prefix>-Endpoint-<group>`)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from ..config import ConfigError, ModelDeployment
from ..constructs.model_endpoint import ModelEndpoint
from ..images import CatalogError


class ModelStack(cdk.Stack):
    def __init__(self, scope: Construct, *, deployment: ModelDeployment, **kwargs: Any) -> None:
        super().__init__(
            scope,
            deployment.stack_name,
            description=f"EMD gateway model {deployment.public_id} ({deployment.catalog.engine} "
            f"on {deployment.instance.name}"
            + (f", shared endpoint {shared.name})" if (shared := deployment.shared) else ")"),
            **kwargs,
        )
        self.deployment = deployment
        try:
            self.model_endpoint = ModelEndpoint(
                self,
                "Endpoint",
                model=deployment.catalog,
                instance=deployment.instance,
                endpoint_name=deployment.own_name,
                min_capacity=deployment.min_capacity,
                max_capacity=deployment.max_capacity,
                media_domains=deployment.choice.media_domains,
                scale_to_zero=deployment.scale_to_zero,
                shared_endpoint=shared.endpoint_name if shared else None,
                accelerators=deployment.accelerators,
            )
        except CatalogError as exc:
            raise ConfigError(f"{deployment.public_id} in {self.region}: {exc}") from exc

        outputs = {
            "ModelId": (deployment.public_id, "public model id (`model` in requests)"),
            "EndpointName": (deployment.endpoint_name, "SageMaker endpoint name"),
            "Engine": (deployment.catalog.engine, "serving container engine"),
            "InstanceType": (deployment.instance.name, "SageMaker instance type"),
            "Families": (",".join(deployment.families), "endpoint families it serves"),
        }
        if deployment.inference_component is not None:
            outputs["InferenceComponentName"] = (
                deployment.inference_component,
                "SageMaker inference component (scale_to_zero or a shared endpoint); "
                "every invoke names it",
            )
        for name, (value, description) in outputs.items():
            cdk.CfnOutput(self, name, value=value, description=description)

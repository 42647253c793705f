"""A SageMaker endpoint that several models share as inference components
(`emd:endpoints`, config.SharedEndpoint).

The endpoint config's one variant carries no model, only the instance type, its host
AMI and ManagedInstanceScaling (min_instances to max_instances; SageMaker adds an
instance when a new copy finds no room and, at min 0, removes the last one once every
component is at zero copies), and names its own execution role, as an
inference-component endpoint must. The members' Models, components and scaling live
in their own model stacks, which name this endpoint and depend on its stack: either
side deploys or is deleted without a cross-stack export in the way (a member stack
first, as CloudFormation's dependency order does on `cdk destroy --all`).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam
from constructs import Construct

from ..catalog import CatalogModel
from ..config import SharedEndpoint
from .model_endpoint import (
    component_endpoint,
    execution_policy,
    image_location,
    retained_log_group,
)


class SharedModelEndpoint(Construct):
    def __init__(
        self, scope: Construct, id_: str, *, shared: SharedEndpoint, members: Sequence[CatalogModel]
    ) -> None:
        super().__init__(scope, id_)
        self.endpoint_name = shared.endpoint_name
        self.log_group = retained_log_group(
            self, "Logs", f"/aws/sagemaker/Endpoints/{shared.endpoint_name}"
        )
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of {shared.endpoint_name}",
        )
        # Each member's Model has its own role that can pull its image; this role may
        # pull them too, since which of the two SageMaker uses for a component's
        # container is not documented.
        images = {m.image.name: m.image for m in members}
        repositories = [
            image_location(Construct(self, f"Image{index}"), image)[1]
            for index, image in enumerate(images.values())
        ]
        self.policy = execution_policy(self, self.role, repositories, [self.log_group])
        instance = shared.instance
        volume_sizes = [m.volume_size_gb for m in members if m.volume_size_gb is not None]
        self.endpoint_config, self.endpoint = component_endpoint(
            self,
            endpoint_name=shared.endpoint_name,
            instance=instance,
            inference_ami_version=shared.inference_ami_version,
            volume_size_gb=max(volume_sizes) if volume_sizes else None,
            instances=(shared.min_instances, shared.max_instances),
            role=self.role,
            policy=self.policy,
            log_group=self.log_group,
        )

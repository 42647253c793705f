"""A SageMaker real-time endpoint for one catalog model, with autoscaling.

Model (container image + environment, execution role) -> EndpointConfig (one variant
on the chosen GPU instance type) -> Endpoint with a deterministic name, so the API
stack can compute its ARN without a cross-stack reference. The Model and the
EndpointConfig keep CloudFormation-generated names: changing them replaces them (a
fixed name would make the replacement fail), and the Endpoint is then updated in
place to the new config.

Autoscaling is registered only when max_capacity > min_capacity. SageMaker refuses
an UpdateEndpoint that changes the instance type of a variant registered with
Application Auto Scaling, so a fixed-size endpoint must not be registered, and a
scaled one changes instance type in two deployments (README, Deploying to AWS).
A new image alone (a new Model) is allowed under autoscaling.

The endpoint's log group is retained when the stack rolls back or is deleted: the
container's logs are what explains a failed health check on a first start.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ..catalog import CatalogModel, InstanceType
from ..images import ACCOUNT_MAPS, ContainerImage

VARIANT = "AllTraffic"
# Slow to add (a GPU instance plus model download takes minutes), so scale in only
# after a long quiet period.
SCALE_IN_COOLDOWN = cdk.Duration.minutes(10)
SCALE_OUT_COOLDOWN = cdk.Duration.minutes(5)
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
# SageMaker publishes the instance metrics (CPU, GPU, memory, disk) with the
# execution role under this namespace.
_METRICS_NAMESPACES = "/aws/sagemaker/*"


class ModelEndpoint(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        model: CatalogModel,
        instance: InstanceType,
        endpoint_name: str,
        min_capacity: int,
        max_capacity: int,
        media_domains: Sequence[str] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.endpoint_name = endpoint_name
        image_uri, repository_arn = self._image(model.image)

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            # SageMaker writes the container's stdout/stderr here; creating it sets a
            # retention and lets the role be scoped to it.
            log_group_name=f"/aws/sagemaker/Endpoints/{endpoint_name}",
            retention=LOG_RETENTION,
            # Kept on rollback and on delete: a container that fails its health check
            # on the first start leaves its logs. Its name is a literal, so a later
            # `cdk deploy --import-existing-resources` adopts the kept group instead of
            # failing with "already exists".
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of {endpoint_name}",
        )
        self.policy = self._execution_policy(repository_arn)

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri,
                mode="SingleModel",
                environment=model.container_environment(instance, media_domains),
            ),
            # Not isolated: the container downloads the weights from the Hugging Face
            # Hub at start (SM_VLLM_MODEL / HF_MODEL_ID name a Hub repository), which an
            # isolated container cannot reach. What a vision model's container may fetch
            # for requests is limited by its allowed media domains instead
            # (catalog.MEDIA_DOMAINS_ENV).
            enable_network_isolation=False,
        )
        # CreateModel checks that the role can pull the image: the policy must exist first.
        self.model.node.add_dependency(self.policy)

        variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=VARIANT,
            model_name=self.model.attr_model_name,
            initial_instance_count=min_capacity,
            initial_variant_weight=1.0,
            instance_type=instance.name,
            container_startup_health_check_timeout_in_seconds=model.startup_health_check_timeout,
            model_data_download_timeout_in_seconds=model.model_download_timeout,
            inference_ami_version=model.inference_ami_version,
            volume_size_in_gb=model.volume_size_gb if instance.volume_size_supported else None,
            # Generation requests vary in length by orders of magnitude: route to the
            # instance with the fewest requests in flight, not at random.
            routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                routing_strategy="LEAST_OUTSTANDING_REQUESTS"
            ),
        )
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self, "EndpointConfig", production_variants=[variant]
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        # The container logs from its first second; the group and grant come first.
        self.endpoint.node.add_dependency(self.log_group, self.policy)

        self.scalable_target: appscaling.ScalableTarget | None = None
        if max_capacity > min_capacity:
            self.scalable_target = self._autoscaling(
                model, endpoint_name, min_capacity, max_capacity
            )

    def _autoscaling(
        self, model: CatalogModel, endpoint_name: str, min_capacity: int, max_capacity: int
    ) -> appscaling.ScalableTarget:
        """Target tracking on invocations per instance, between the two capacities."""
        target = appscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{endpoint_name}/variant/{VARIANT}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            # Application Auto Scaling acts through its SageMaker service-linked role
            # (created on first use); without this CDK would add an unused role.
            role=iam.Role.from_role_arn(
                self,
                "ScalingRole",
                f"arn:{cdk.Aws.PARTITION}:iam::{cdk.Aws.ACCOUNT_ID}:role/aws-service-role/"
                "sagemaker.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                mutable=False,
            ),
        )
        target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=model.invocations_per_instance_target,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
        )
        return target

    def _image(self, image: ContainerImage) -> tuple[str, str]:
        """(image URI, ECR repository ARN): literal when the region is known at synth,
        else from a CfnMapping keyed by region, guarded by a rule with a clear message."""
        stack = cdk.Stack.of(self)
        region = stack.region
        if not cdk.Token.is_unresolved(region):
            account = image.account(region)
            return image.uri(region), (
                f"arn:{stack.partition}:ecr:{region}:{account}:repository/{image.repository}"
            )
        accounts = ACCOUNT_MAPS[image.accounts]
        mapping = cdk.CfnMapping(
            self,
            "ImageAccounts",
            mapping={r: {"account": a} for r, a in sorted(accounts.items())},
        )
        cdk.CfnRule(
            self,
            "ImageRegion",
            assertions=[
                cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_contains(sorted(accounts), cdk.Aws.REGION),
                    assert_description=(
                        f"The image {image.name} is not published in this region. "
                        f"Regions with it: {', '.join(sorted(accounts))}."
                    ),
                )
            ],
        )
        account = mapping.find_in_map(cdk.Aws.REGION, "account")
        uri = (
            f"{account}.dkr.ecr.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}/"
            f"{image.repository}:{image.tag}"
        )
        arn = (
            f"arn:{cdk.Aws.PARTITION}:ecr:{cdk.Aws.REGION}:{account}:repository/{image.repository}"
        )
        return uri, arn

    def _execution_policy(self, repository_arn: str) -> iam.Policy:
        """What SageMaker does with the execution role: pull the image, write the
        container's logs and the instance metrics. No S3: weights come from the Hub."""
        policy = iam.Policy(
            self,
            "ExecutionPolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability",
                    ],
                    resources=[repository_arn],
                ),
                iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                iam.PolicyStatement(
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    resources=[self.log_group.log_group_arn],
                ),
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": _METRICS_NAMESPACES}},
                ),
            ],
        )
        cdk.Validations.of(policy).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason=(
                    "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no "
                    "resource-level permissions; PutMetricData is limited to SageMaker's "
                    "metric namespaces by condition. Image pulls are scoped to the one "
                    "ECR repository and logs to the endpoint's log group."
                ),
            )
        )
        return policy

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

With scale_to_zero the model is an inference component instead (SageMaker docs, "Scale
an endpoint to zero instances"): the endpoint config's variant carries no model, only
the instance type and ManagedInstanceScaling (0 to max_copies instances), and names the
execution role itself; the component (named as the endpoint) runs the Model on a whole
instance. Application Auto Scaling then works on the component's copy count, 0 to
max_copies: target tracking on invocations per copy (in to zero after idle_minutes),
and a step policy (to one copy) on an alarm on NoCapacityInvocationFailures, which
SageMaker emits when a request finds no copy (target tracking cannot scale out of
zero). The variant is not registered with Application Auto Scaling, and the component
cannot change instance type in place: README says how such a change deploys.

A member of a shared endpoint (`emd:endpoints`, config.SharedEndpoint) is a component
too, on the endpoint its group's stack holds (shared_endpoint.py): here only its Model,
its component (on the endpoint by name; the stack depends on the endpoint's stack, so
no export ties them), its component log group and, with scale_to_zero, its scaling.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ..catalog import CatalogModel, InstanceType
from ..config import ScaleToZero
from ..images import ACCOUNT_MAPS, ContainerImage

VARIANT = "AllTraffic"
# Slow to add (a GPU instance plus model download takes minutes), so scale in only
# after a long quiet period.
SCALE_IN_COOLDOWN = cdk.Duration.minutes(10)
SCALE_OUT_COOLDOWN = cdk.Duration.minutes(5)
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
# The step policy that wakes a component at zero copies, and its alarm, as the SageMaker
# docs give them ("Scale an endpoint to zero instances"), with two changes. The docs add
# one copy (ChangeInCapacity); here the policy sets exactly one (ExactCapacity): the
# alarm stays in ALARM, and re-runs its action every minute, for as long as requests
# keep failing, which they do through the minutes a wake takes, so +1 a minute would
# climb to max_copies instances; and the gateway has usually asked for that copy
# already (wake.py), which +1 would double. No-capacity failures happen only at zero
# copies, so setting one never lowers a count target tracking raised. And the docs'
# threshold is 1 with GreaterThanThreshold (two failed requests in a minute); 0 here,
# so one failed request (a lone client) wakes the model too. Maximum aggregation, 60 s
# cooldown; the alarm is Sum over 60 s, 1 of 1 evaluation periods.
WAKE_COOLDOWN = cdk.Duration.seconds(60)
WAKE_ALARM_PERIOD = cdk.Duration.seconds(60)
# Scale-out cooldown of target tracking on a component, as in the docs' example.
COMPONENT_SCALE_OUT_COOLDOWN = cdk.Duration.seconds(300)
# Where SageMaker writes an inference component's container logs.
COMPONENT_LOG_GROUP_PREFIX = "/aws/sagemaker/InferenceComponents/"
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
        scale_to_zero: ScaleToZero | None = None,
        shared_endpoint: str | None = None,
        accelerators: int | None = None,
    ) -> None:
        """`endpoint_name`: the model's own name (its endpoint's, or its component's on
        `shared_endpoint`, where it takes `accelerators` whole GPUs)."""
        super().__init__(scope, id_)
        self.endpoint_name = shared_endpoint or endpoint_name
        # The component is named as the model's own endpoint would be (shared/notes:
        # the s2z contract).
        self.inference_component_name = (
            endpoint_name if scale_to_zero is not None or shared_endpoint is not None else None
        )
        image_uri, repository_arn = image_location(self, model.image)

        log_groups: list[logs.LogGroup] = []
        self.log_group: logs.LogGroup | None = None
        if shared_endpoint is None:
            self.log_group = retained_log_group(
                self, "Logs", f"/aws/sagemaker/Endpoints/{endpoint_name}"
            )
            log_groups.append(self.log_group)
        self.component_log_group: logs.LogGroup | None = None
        if self.inference_component_name is not None:
            # A component's container logs go to a group of its own.
            self.component_log_group = retained_log_group(
                self, "ComponentLogs", COMPONENT_LOG_GROUP_PREFIX + self.inference_component_name
            )
            log_groups.append(self.component_log_group)
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of {endpoint_name}",
        )
        self.policy = execution_policy(self, self.role, [repository_arn], log_groups)
        gpus = accelerators if shared_endpoint is not None else None

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri,
                mode="SingleModel",
                environment=model.container_environment(instance, media_domains, gpus=gpus),
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

        self.scalable_target: appscaling.ScalableTarget | None = None
        self.inference_component: sagemaker.CfnInferenceComponent | None = None
        self.endpoint_config: sagemaker.CfnEndpointConfig | None = None
        self.endpoint: sagemaker.CfnEndpoint | None = None
        if shared_endpoint is not None:
            assert accelerators is not None
            # By name: the endpoint is another stack's, which this one depends on.
            self._component(model, shared_endpoint, accelerators)
            if scale_to_zero is not None:
                self.scalable_target = self._component_scaling(model, endpoint_name, scale_to_zero)
            return
        if scale_to_zero is not None:
            self._component_endpoint(model, instance, scale_to_zero)
            return

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

        if max_capacity > min_capacity:
            self.scalable_target = self._autoscaling(
                model, endpoint_name, min_capacity, max_capacity
            )

    def _component_endpoint(
        self, model: CatalogModel, instance: InstanceType, scale_to_zero: ScaleToZero
    ) -> None:
        """Endpoint with managed instance scaling (0 to max_copies), the model as its
        inference component, and the component's copy-count scaling."""
        name = self.inference_component_name
        assert name is not None
        self.endpoint_config, self.endpoint = component_endpoint(
            self,
            endpoint_name=self.endpoint_name,
            instance=instance,
            inference_ami_version=model.inference_ami_version,
            volume_size_gb=model.volume_size_gb,
            # One instance at creation, so the component's first copy has room; managed
            # instance scaling removes it once the component is at zero copies.
            instances=(0, scale_to_zero.max_copies),
            role=self.role,
            policy=self.policy,
            log_group=self.log_group,
        )
        # By reference: the component is created after, and deleted before, its
        # endpoint (deleting an endpoint leaves its components behind). The whole
        # instance: the container shards over every GPU (catalog.TENSOR_PARALLEL_ENV),
        # and one copy is one instance.
        self._component(model, self.endpoint.attr_endpoint_name, instance.gpus)
        self.scalable_target = self._component_scaling(model, name, scale_to_zero)

    def _component(self, model: CatalogModel, endpoint: str, accelerators: int) -> None:
        """The model as an inference component on `endpoint`, on `accelerators` GPUs."""
        name = self.inference_component_name
        assert name is not None
        self.inference_component = sagemaker.CfnInferenceComponent(
            self,
            "InferenceComponent",
            inference_component_name=name,
            endpoint_name=endpoint,
            variant_name=VARIANT,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=self.model.attr_model_name,
                compute_resource_requirements=sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
                    number_of_accelerator_devices_required=accelerators,
                    min_memory_required_in_mb=model.component_memory_mb,
                ),
                startup_parameters=sagemaker.CfnInferenceComponent.InferenceComponentStartupParametersProperty(
                    container_startup_health_check_timeout_in_seconds=model.startup_health_check_timeout,
                    model_data_download_timeout_in_seconds=model.model_download_timeout,
                ),
            ),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(
                copy_count=1
            ),
        )
        assert self.component_log_group is not None
        self.inference_component.node.add_dependency(self.component_log_group)

    def _component_scaling(
        self, model: CatalogModel, name: str, scale_to_zero: ScaleToZero
    ) -> appscaling.ScalableTarget:
        target = appscaling.ScalableTarget(
            self,
            "ComponentScaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"inference-component/{name}",
            scalable_dimension="sagemaker:inference-component:DesiredCopyCount",
            min_capacity=0,
            max_capacity=scale_to_zero.max_copies,
            role=self._scaling_role(),
        )
        # Registering needs the component to exist.
        assert self.inference_component is not None
        target.node.add_dependency(self.inference_component)
        # Invocations per copy per minute, the metric the scale-to-zero docs use; one
        # copy is one instance, so the catalog's per-instance target applies as it is.
        target.scale_to_track_metric(
            "InvocationsPerCopy",
            target_value=model.invocations_per_instance_target,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_INVOCATIONS_PER_COPY,
            scale_in_cooldown=cdk.Duration.minutes(scale_to_zero.idle_minutes),
            scale_out_cooldown=COMPONENT_SCALE_OUT_COOLDOWN,
        )
        wake = appscaling.StepScalingAction(
            self,
            "WakeFromZero",
            scaling_target=target,
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
            cooldown=WAKE_COOLDOWN,
        )
        wake.add_adjustment(adjustment=1, lower_bound=0)
        self.wake_alarm = cloudwatch.Alarm(
            self,
            "NoCapacityAlarm",
            alarm_description=(f"Requests to {name} found no copy (scaled to zero): add one copy."),
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="NoCapacityInvocationFailures",
                dimensions_map={"InferenceComponentName": name},
                statistic="Sum",
                period=WAKE_ALARM_PERIOD,
            ),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            threshold=0,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            # No failures, no data points: not a reason to wake.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.wake_alarm.add_alarm_action(cloudwatch_actions.ApplicationScalingAction(wake))
        return target

    def _scaling_role(self) -> iam.IRole:
        # Application Auto Scaling acts through its SageMaker service-linked role
        # (created on first use); without this CDK would add an unused role.
        return iam.Role.from_role_arn(
            self,
            "ScalingRole",
            f"arn:{cdk.Aws.PARTITION}:iam::{cdk.Aws.ACCOUNT_ID}:role/aws-service-role/"
            "sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
            mutable=False,
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
            role=self._scaling_role(),
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


def component_endpoint(
    scope: Construct,
    *,
    endpoint_name: str,
    instance: InstanceType,
    inference_ami_version: str | None,
    volume_size_gb: int | None,
    instances: tuple[int, int],
    role: iam.IRole,
    policy: iam.Policy,
    log_group: logs.LogGroup,
) -> tuple[sagemaker.CfnEndpointConfig, sagemaker.CfnEndpoint]:
    """An endpoint for inference components (one model's, or several sharing it): its
    variant carries no model, only the instance, its host AMI and ManagedInstanceScaling
    between `instances` (min, max), starting with one instance so the first copies have
    room; the config names the execution role (SageMaker takes it from there)."""
    variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
        variant_name=VARIANT,
        instance_type=instance.name,
        initial_instance_count=1,
        inference_ami_version=inference_ami_version,
        volume_size_in_gb=volume_size_gb if instance.volume_size_supported else None,
        managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
            status="ENABLED", min_instance_count=instances[0], max_instance_count=instances[1]
        ),
        routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
            routing_strategy="LEAST_OUTSTANDING_REQUESTS"
        ),
    )
    config = sagemaker.CfnEndpointConfig(
        scope, "EndpointConfig", production_variants=[variant], execution_role_arn=role.role_arn
    )
    config.node.add_dependency(policy)
    endpoint = sagemaker.CfnEndpoint(
        scope,
        "Endpoint",
        endpoint_name=endpoint_name,
        endpoint_config_name=config.attr_endpoint_config_name,
    )
    # The container logs from its first second; the group and grant come first.
    endpoint.node.add_dependency(log_group, policy)
    return config, endpoint


def retained_log_group(scope: Construct, id_: str, name: str) -> logs.LogGroup:
    return logs.LogGroup(
        scope,
        id_,
        # SageMaker writes the container's stdout/stderr here; creating it sets a
        # retention and lets the role be scoped to it.
        log_group_name=name,
        retention=LOG_RETENTION,
        # Kept on rollback and on delete: a container that fails its health check
        # on the first start leaves its logs. Its name is a literal, so a later
        # `cdk deploy --import-existing-resources` adopts the kept group instead of
        # failing with "already exists".
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )


def image_location(scope: Construct, image: ContainerImage) -> tuple[str, str]:
    """(image URI, ECR repository ARN): literal when the region is known at synth,
    else from a CfnMapping keyed by region (a child of `scope`), guarded by a rule with
    a clear message."""
    stack = cdk.Stack.of(scope)
    region = stack.region
    if not cdk.Token.is_unresolved(region):
        account = image.account(region)
        return image.uri(region), (
            f"arn:{stack.partition}:ecr:{region}:{account}:repository/{image.repository}"
        )
    accounts = ACCOUNT_MAPS[image.accounts]
    mapping = cdk.CfnMapping(
        scope,
        "ImageAccounts",
        mapping={r: {"account": a} for r, a in sorted(accounts.items())},
    )
    cdk.CfnRule(
        scope,
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
    uri = f"{account}.dkr.ecr.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}/{image.repository}:{image.tag}"
    arn = f"arn:{cdk.Aws.PARTITION}:ecr:{cdk.Aws.REGION}:{account}:repository/{image.repository}"
    return uri, arn


def execution_policy(
    scope: Construct,
    role: iam.IRole,
    repository_arns: Sequence[str],
    log_groups: Sequence[logs.LogGroup],
) -> iam.Policy:
    """What SageMaker does with an execution role: pull the images, write the
    containers' logs and the instance metrics. No S3: weights come from the Hub."""
    statements = [
        iam.PolicyStatement(
            actions=[
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability",
            ],
            resources=list(repository_arns),
        ),
        iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": _METRICS_NAMESPACES}},
        ),
    ]
    if log_groups:
        statements.insert(
            2,
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[g.log_group_arn for g in log_groups],
            ),
        )
    policy = iam.Policy(scope, "ExecutionPolicy", roles=[role], statements=statements)
    cdk.Validations.of(policy).acknowledge(
        cdk.Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason=(
                "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no "
                "resource-level permissions; PutMetricData is limited to SageMaker's "
                "metric namespaces by condition. Image pulls are scoped to the ECR "
                "repositories and logs to the endpoint's log groups."
            ),
        )
    )
    return policy

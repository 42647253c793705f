"""Builds the whole CDK app from its context: the API stack, one stack per shared
endpoint and per chosen model, and the cdk-nag AwsSolutions checks over all of them."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from .config import DeployConfig, load
from .stacks.api_stack import ApiStack
from .stacks.endpoint_stack import EndpointStack
from .stacks.model_stack import ModelStack


def build(app: cdk.App, *, env: cdk.Environment | None = None) -> DeployConfig:
    config = load(app.node.try_get_context)
    if env is not None and env.region:
        # Before any stack: bundling the Lambdas first would only delay the error.
        config.check_region(env.region)
    ApiStack(app, config=config, env=env)
    shared = {
        s.name: EndpointStack(app, shared=s, members=config.members_of(s), env=env)
        for s in config.endpoints
    }
    for deployment in config.models:
        stack = ModelStack(app, deployment=deployment, env=env)
        if deployment.shared is not None:
            # Its component names the endpoint; no export, only the deploy order.
            stack.add_stack_dependency(shared[deployment.shared.name])
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return config

"""CloudWatch alarms on the gateway: API 5xx answers and Lambda errors.

They have no actions: subscribe an SNS topic (or a chatbot) to them in the console or
in your own stack. Missing data (no traffic) is not an alarm.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

PERIOD = cdk.Duration.minutes(5)
# 5xx includes 503 model_not_ready while an endpoint scales, so a few are expected.
API_5XX_THRESHOLD = 10
LAMBDA_ERROR_THRESHOLD = 1


class GatewayAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        api: apigw.RestApi,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, id_)
        self.alarms: list[cloudwatch.Alarm] = [
            api.metric_server_error(period=PERIOD, statistic="Sum").create_alarm(
                self,
                "Api5xx",
                alarm_description="EMD gateway: API Gateway answered 5xx",
                threshold=API_5XX_THRESHOLD,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        ]
        for family, fn in functions.items():
            self.alarms.append(
                fn.metric_errors(period=PERIOD, statistic="Sum").create_alarm(
                    self,
                    f"{family.title()}LambdaErrors",
                    alarm_description=f"EMD gateway: the {family} Lambda failed "
                    "(crash, timeout or out of memory)",
                    threshold=LAMBDA_ERROR_THRESHOLD,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )

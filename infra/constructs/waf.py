"""The opt-in WAF web ACL (context `emd:waf`): one rate-based rule that blocks a client
IP sending more than `rate_limit` requests in any 5 minute window. No managed rule
groups: the common rule set blocks bodies over 8 KB, which chat and audio requests
exceed."""

from __future__ import annotations

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct


class RateLimitWebAcl(Construct):
    def __init__(self, scope: Construct, id_: str, *, name: str, rate_limit: int) -> None:
        super().__init__(scope, id_)

        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=metric,
                sampled_requests_enabled=True,
            )

        self.acl = wafv2.CfnWebACL(
            self,
            "Acl",
            name=name,
            description="EMD gateway: requests per client IP per 5 minutes",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(f"{name}-acl"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RatePerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=rate_limit,
                            evaluation_window_sec=300,
                        )
                    ),
                    visibility_config=visibility(f"{name}-rate-per-ip"),
                )
            ],
        )

    @property
    def arn(self) -> str:
        return self.acl.attr_arn

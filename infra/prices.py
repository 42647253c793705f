"""On-demand hourly prices of SageMaker real-time inference instances, for `emd status`
and `emd doctor` to say what a deployment costs.

A dated snapshot, not a live lookup: prices change, and the CLI should not need the
Pricing API's permissions. Only prices found in a published source are listed; an
instance type or region missing here is shown as "?" (never guessed, never derived
from EC2 prices).

How they were obtained (we could not fetch the pricing page itself): the hosting
("USE1-Host:<type>") rows as quoted by two public sources that agree where they
overlap:
- aws-samples/foundation-model-benchmarking-tool, fmbench/configs/pricing.yml
  ("SageMaker Hourly Instance Pricing", us-east-1);
- a public write-up quoting the AWS Price List file
  https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonSageMaker/current/us-east-1/index.csv
  (version 20261005212151), for ml.g6.xlarge and the ml.g6e sizes.
Check https://aws.amazon.com/sagemaker/pricing/ (Real-Time Inference tab) for your
region before budgeting; no price is listed yet for us-west-2 or eu-west-1.
"""

from __future__ import annotations

PRICES_AS_OF = "2026-10-05"
PRICES_SOURCE = "https://aws.amazon.com/sagemaker/pricing/"
HOURS_PER_DAY = 24

# USD per instance-hour, SageMaker real-time inference, on demand.
HOURLY_USD: dict[str, dict[str, float]] = {
    "us-east-1": {
        "ml.g4dn.xlarge": 0.7364,
        "ml.g4dn.2xlarge": 0.94,
        "ml.g5.xlarge": 1.4084,
        "ml.g5.2xlarge": 1.515,
        "ml.g5.4xlarge": 2.03,
        "ml.g5.12xlarge": 7.09,
        "ml.g5.48xlarge": 20.36,
        "ml.g6.xlarge": 1.1267,
        "ml.g6.2xlarge": 1.222,
        "ml.g6.12xlarge": 5.752,
        "ml.g6.48xlarge": 16.688,
        "ml.g6e.2xlarge": 2.8026,
        "ml.g6e.12xlarge": 13.1158,
        # Not found in a source: ml.g6.4xlarge, ml.g6e.xlarge, ml.g6e.4xlarge.
    },
}


def hourly_price(instance_type: str | None, region: str) -> float | None:
    """USD per instance-hour, or None when this snapshot has no price for it."""
    if not instance_type:
        return None
    return HOURLY_USD.get(region, {}).get(instance_type)


def cost(instance_type: str | None, count: int | None, region: str) -> float | None:
    """Hourly cost of `count` instances, or None when the price or count is unknown."""
    if count == 0:
        return 0.0
    price = hourly_price(instance_type, region)
    if price is None or count is None:
        return None
    return round(price * count, 4)


def usd(amount: float | None, *, per: str = "") -> str:
    """`$1.41/h`-style text; "?" when unknown."""
    if amount is None:
        return "?"
    return f"${amount:,.2f}{per}"

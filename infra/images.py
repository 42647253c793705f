"""Serving images and where they are published.

Image URIs are `<account>.dkr.ecr.<region>.<suffix>/<repository>:<tag>`, with the
account taken from one of two region maps: the Deep Learning Containers one (vLLM, LMI,
TGI, WhisperX) or TEI's own. Repositories, tags and accounts come from
shared/notes/containers.md (sections 1-5 and 7, with their sources).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict


class CatalogError(ValueError):
    """A deployment asks for something the catalog cannot provide."""


AccountMap = Literal["dlc", "tei"]

# Deep Learning Containers registry accounts (containers.md section 7; the same map
# as the SageMaker SDK's registries).
_DLC_DEFAULT = "763104351884"
DLC_ACCOUNTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "ca-central-1",
            "sa-east-1",
            "eu-central-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "eu-north-1",
            "ap-south-1",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-southeast-1",
            "ap-southeast-2",
        ),
        _DLC_DEFAULT,
    ),
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-east-2": "975050140332",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ap-southeast-5": "550225433462",
    "ap-southeast-6": "633930458069",
    "ap-southeast-7": "590183813437",
    "ca-west-1": "204538143572",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "mx-central-1": "637423239942",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
}

# TEI has its own registry accounts (containers.md section 7) and none in ap-east-2,
# ap-southeast-5/6/7 or mx-central-1.
TEI_ACCOUNTS: dict[str, str] = {
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "ca-west-1": "190319476487",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "cn-north-1": "450853457545",
    "cn-northwest-1": "451049120500",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "414596584902",
}

ACCOUNT_MAPS: Mapping[AccountMap, Mapping[str, str]] = {"dlc": DLC_ACCOUNTS, "tei": TEI_ACCOUNTS}


def ecr_domain_suffix(region: str) -> str:
    """The China regions' ECR hostnames end in `.com.cn` (as botocore has them)."""
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


class ContainerImage(BaseModel):
    """One serving image, published in every region of its account map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repository: str
    tag: str
    accounts: AccountMap

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.tag}"

    def account(self, region: str) -> str:
        accounts = ACCOUNT_MAPS[self.accounts]
        if region not in accounts:
            raise CatalogError(
                f"image {self.name} is not published in region {region}; "
                f"regions that have it: {', '.join(sorted(accounts))}"
            )
        return accounts[region]

    def uri(self, region: str) -> str:
        return (
            f"{self.account(region)}.dkr.ecr.{region}.{ecr_domain_suffix(region)}/"
            f"{self.repository}:{self.tag}"
        )


# The images the catalog uses (containers.md sections 1-5).
VLLM = ContainerImage(repository="vllm", tag="server-sagemaker-cuda-v2.3", accounts="dlc")
LMI = ContainerImage(repository="djl-inference", tag="0.36.0-lmi27.0.0-cu130", accounts="dlc")
TGI = ContainerImage(
    repository="huggingface-pytorch-tgi-inference",
    tag="2.7.0-tgi3.3.6-gpu-py311-cu124-ubuntu22.04",
    accounts="dlc",
)
TEI = ContainerImage(
    repository="tei", tag="2.0.1-tei1.8.2-gpu-py310-cu122-ubuntu22.04", accounts="tei"
)
WHISPERX = ContainerImage(
    repository="whisperx", tag="3.8.6-cu128-amzn2023-sagemaker", accounts="dlc"
)

# Host AMIs (CloudFormation ProductionVariant.InferenceAmiVersion). The default host
# AMIs of g4dn/g5 carry NVIDIA driver 470, too old for these images:
# - CUDA 13 images (vLLM DLC v2.x, LMI cu130) need driver 580: the AL2023 GPU 4.1 AMI.
# - CUDA 12.x images need driver >= 525; the AL2 GPU 3.1 AMI has 550 (CUDA 12.4), and
#   the WhisperX docs require exactly it.
AMI_CUDA_13 = "al2023-ami-sagemaker-inference-gpu-4-1"
AMI_CUDA_12 = "al2-ami-sagemaker-inference-gpu-3-1"

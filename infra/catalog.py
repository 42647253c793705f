"""The model catalog: every model `cdk deploy` can serve, as data.

Each entry says which container serves the model (image, environment, host AMI),
what it can do (families, features), where it fits (GPU instance types) and how long
SageMaker should wait for it. Images, environment variables and sizes come from
shared/notes/containers.md (sources there); nothing here is guessed, and model quirks
never leak into code as `if` statements.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from emd_proxy.registry import Engine, Family, Features

from .images import (
    AMI_CUDA_12,
    AMI_CUDA_13,
    LMI,
    TEI,
    TGI,
    VLLM,
    WHISPERX,
    CatalogError,
    ContainerImage,
)


class InstanceType(BaseModel):
    """A SageMaker GPU instance type and the facts deployments depend on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    gpus: int
    gpu_memory_gib: int  # per GPU

    @property
    def volume_size_supported(self) -> bool:
        return volume_size_supported(self.name)


def volume_size_supported(instance_type: str) -> bool:
    """Whether a ProductionVariant may set VolumeSizeInGB on this instance type.

    SageMaker rejects it ("VolumeSize parameter is not allowed for the selected
    Instance type") on instances with local NVMe storage: families with a `d` (g4dn,
    p4d...) and g5, g6, g6e, p5, trn1 (the SageMaker SDK's `volume_size_supported`)."""
    family = instance_type.removeprefix("ml.").split(".", 1)[0]
    if "d" in family:
        return False
    return not family.startswith(("g5", "g6", "p5", "trn1"))


def _instances(*specs: tuple[str, int, int]) -> dict[str, InstanceType]:
    return {
        name: InstanceType(name=name, gpus=gpus, gpu_memory_gib=mem) for name, gpus, mem in specs
    }


# GPU counts and memory per GPU (containers.md section 6: SDK instance_gpu_info.json;
# g6e counts from third-party code).
INSTANCE_TYPES: dict[str, InstanceType] = _instances(
    ("ml.g4dn.xlarge", 1, 16),
    ("ml.g4dn.2xlarge", 1, 16),
    ("ml.g5.xlarge", 1, 24),
    ("ml.g5.2xlarge", 1, 24),
    ("ml.g5.4xlarge", 1, 24),
    ("ml.g5.12xlarge", 4, 24),
    ("ml.g5.48xlarge", 8, 24),
    ("ml.g6.xlarge", 1, 24),
    ("ml.g6.2xlarge", 1, 24),
    ("ml.g6.4xlarge", 1, 24),
    ("ml.g6.12xlarge", 4, 24),
    ("ml.g6.48xlarge", 8, 24),
    ("ml.g6e.xlarge", 1, 48),
    ("ml.g6e.2xlarge", 1, 48),
    ("ml.g6e.4xlarge", 1, 48),
    ("ml.g6e.12xlarge", 4, 48),
)

# The environment variable that sets tensor parallelism, per engine: it follows the
# instance's GPU count, so a bigger instance is used whole. TEI and WhisperX run on
# one GPU.
TENSOR_PARALLEL_ENV: dict[Engine, str] = {
    "vllm": "SM_VLLM_TENSOR_PARALLEL_SIZE",
    "lmi": "OPTION_TENSOR_PARALLEL_DEGREE",
    "tgi": "SM_NUM_GPUS",
}

# Scale to zero: how long a wake from zero copies takes, an estimate (the registry's
# `wake_seconds`, the Retry-After before the gateway has measured a wake of its own).
# Not measured here (no AWS account in these tests); from public measurements:
# - instance provisioning: a third-party scale-to-zero deployment measured 4 min for a
#   new IC endpoint's instance to come InService, and an AWS blog on scale to zero
#   quotes ~1.75 min to provision the instance after the scaling decision; 4 min here.
# - model load, per engine: the same third-party measurement took 6 min from instance
#   to component InService for vLLM with a 0.6B model from the Hub (download, start,
#   CUDA graphs); bigger weights take longer to download, so the estimate is 6 min for
#   the generation engines (LMI's own model loading is slower: 7 min), and 3 min for
#   TEI and WhisperX, whose weights are a few GB and which compile nothing at start.
WAKE_PROVISION_SECONDS = 240
WAKE_LOAD_SECONDS: dict[Engine, int] = {
    "vllm": 360,
    "tgi": 360,
    "lmi": 420,
    "tei": 180,
    "whisperx": 180,
    "hf_asr": 180,
}
# An inference component's host-memory reservation (MinMemoryRequiredInMb, required by
# SageMaker). It is a scheduling reservation, not a cap on what the container uses, and
# SageMaker schedules against a pool much smaller than the instance's memory: a public
# measurement had 1024 MB accepted and 4096 MB refused on ml.g5.xlarge ("not enough
# hardware resources"). Each model here has an instance to itself, so the reservation
# only has to fit: 1024 MB for every entry unless one sets its own.
COMPONENT_MEMORY_MB = 1024

# vLLM fetches http(s) media URLs in content parts (image_url, video_url, audio_url)
# itself, from inside the endpoint; the proxy never does. `--allowed-media-domains`
# (the DLC turns this variable's JSON array into the flag) limits the fetch to those
# exact hostnames; data: URLs (base64, what most clients send) are read whatever the
# list. An empty array makes the DLC drop the flag, which allows every domain, so "no
# domain" is a hostname that never resolves: `.invalid` is reserved (RFC 2606).
MEDIA_DOMAINS_ENV = "SM_VLLM_ALLOWED_MEDIA_DOMAINS"
NO_MEDIA_DOMAINS: tuple[str, ...] = ("invalid",)
# vLLM follows redirects by default, which would let a listed host send the fetch to
# any other host (or to the instance's own network).
MEDIA_REDIRECTS_ENV = "VLLM_MEDIA_URL_ALLOW_REDIRECTS"
# Content-part features whose parts may be URLs the engine fetches.
_MEDIA_FEATURES = ("vision", "video", "audio")


class CatalogModel(BaseModel):
    """One deployable model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="public model name; ids are `<model>/<tag>`")
    hf_model_id: str
    families: list[Family]
    engine: Engine
    image: ContainerImage
    # Container environment without tensor parallelism (added per instance type).
    environment: dict[str, str]
    default_instance_type: str
    instance_types: list[str]
    features: Features = Field(default_factory=Features)
    max_model_len: int | None = None
    inference_ami_version: str | None = None
    # Seconds SageMaker waits for the container's first good /ping (weights download
    # from the Hugging Face Hub and load in this window) and for model data from S3.
    startup_health_check_timeout: int = Field(ge=60, le=3600)
    model_download_timeout: int = Field(default=600, ge=60, le=3600)
    # Only used where the instance type allows VolumeSizeInGB.
    volume_size_gb: int | None = Field(default=None, ge=1, le=512)
    # Target tracking: invocations per instance per minute.
    invocations_per_instance_target: float = Field(gt=0)
    # Generated tokens per second one request can count on, on the default instance
    # under load (a floor: GPU memory bandwidth over the weights' size, about halved
    # for concurrent requests). The proxy answers a non-stream request with one plain
    # invoke when its max_tokens fits SageMaker's 60 s limit at this speed
    # (lambdas/emd_proxy/generation.py); None: always stream from the engine.
    decode_tokens_per_second: float | None = Field(default=None, gt=0)
    # Request defaults the proxy applies (a client's own value wins); empty means the
    # engine's own defaults.
    defaults: dict[str, object] = Field(default_factory=dict)
    # As an inference component (scale_to_zero): the host memory it reserves
    # (COMPONENT_MEMORY_MB says why this default).
    component_memory_mb: int = Field(default=COMPONENT_MEMORY_MB, ge=128)

    @model_validator(mode="after")
    def _check(self) -> CatalogModel:
        unknown = [t for t in self.instance_types if t not in INSTANCE_TYPES]
        if unknown:
            raise ValueError(f"{self.model}: instance types missing from INSTANCE_TYPES: {unknown}")
        if self.default_instance_type not in self.instance_types:
            raise ValueError(f"{self.model}: default instance type is not in instance_types")
        tp = TENSOR_PARALLEL_ENV.get(self.engine)
        if tp and tp in self.environment:
            raise ValueError(f"{self.model}: {tp} is set per instance type, not in environment")
        for name in (MEDIA_DOMAINS_ENV, MEDIA_REDIRECTS_ENV):
            if name in self.environment:
                raise ValueError(f"{self.model}: {name} is set per deployment, not in environment")
        return self

    @property
    def fetches_media(self) -> bool:
        """Whether the engine downloads media URLs of content parts itself (vLLM with a
        vision, video or audio feature), so its allowed domains are configured."""
        features = self.features
        return self.engine == "vllm" and (
            features.vision or any(features.flag(name) for name in _MEDIA_FEATURES)
        )

    @property
    def wake_seconds(self) -> float:
        """Estimated seconds from zero copies to serving (WAKE_LOAD_SECONDS says whence)."""
        return float(WAKE_PROVISION_SECONDS + WAKE_LOAD_SECONDS[self.engine])

    def instance(self, instance_type: str | None = None) -> InstanceType:
        name = instance_type or self.default_instance_type
        if name not in self.instance_types:
            raise CatalogError(
                f"instance type {name!r} is not supported for {self.model}; "
                f"choose one of: {', '.join(self.instance_types)}"
            )
        return INSTANCE_TYPES[name]

    def container_environment(
        self,
        instance: InstanceType,
        media_domains: Sequence[str] | None = None,
        *,
        gpus: int | None = None,
    ) -> dict[str, str]:
        """The container's environment on `instance`. `media_domains`: the hostnames
        a media-fetching model may download from (None or empty: none, data: URLs only).
        `gpus`: the GPUs it gets of the instance, when it shares one (default all)."""
        env = dict(self.environment)
        tp = TENSOR_PARALLEL_ENV.get(self.engine)
        if tp:
            env[tp] = str(gpus or instance.gpus)
        if self.fetches_media:
            env[MEDIA_DOMAINS_ENV] = json.dumps(list(media_domains or NO_MEDIA_DOMAINS))
            env[MEDIA_REDIRECTS_ENV] = "0"
        elif media_domains:
            raise CatalogError(
                f"{self.model} fetches no media URLs (only vLLM models with the vision, "
                "video or audio feature do), so it takes no media_domains"
            )
        return env


_VLLM_24GB = ["ml.g5.xlarge", "ml.g5.2xlarge", "ml.g6.xlarge", "ml.g6.2xlarge", "ml.g6e.xlarge"]
_48GB_OR_4_GPUS = [
    "ml.g6e.xlarge",
    "ml.g6e.2xlarge",
    "ml.g6e.4xlarge",
    "ml.g5.12xlarge",
    "ml.g6.12xlarge",
    "ml.g6e.12xlarge",
]
# TEI's GPU image is built for Ampere and newer (A10G, L4, L40S); T4 (g4dn) needs a
# different build.
_TEI_INSTANCES = ["ml.g5.xlarge", "ml.g5.2xlarge", "ml.g6.xlarge", "ml.g6.2xlarge", "ml.g6e.xlarge"]


def _vllm_env(hf_model_id: str, max_model_len: int, **extra: str) -> dict[str, str]:
    return {"SM_VLLM_MODEL": hf_model_id, "SM_VLLM_MAX_MODEL_LEN": str(max_model_len), **extra}


_TOOLS_HERMES = {"SM_VLLM_ENABLE_AUTO_TOOL_CHOICE": "true", "SM_VLLM_TOOL_CALL_PARSER": "hermes"}

_MODELS: list[CatalogModel] = [
    # Small instruct chat model: 4B bf16 (~8 GB) on one 24 GB GPU with room for a 32k
    # KV cache.
    CatalogModel(
        model="Qwen3-4B-Instruct-2507",
        hf_model_id="Qwen/Qwen3-4B-Instruct-2507",
        families=["chat", "invocations"],
        engine="vllm",
        image=VLLM,
        environment=_vllm_env("Qwen/Qwen3-4B-Instruct-2507", 32768, **_TOOLS_HERMES),
        max_model_len=32768,
        default_instance_type="ml.g5.xlarge",
        instance_types=[*_VLLM_24GB, "ml.g5.12xlarge", "ml.g6.12xlarge"],
        features=Features(tools=True),
        inference_ami_version=AMI_CUDA_13,
        startup_health_check_timeout=1200,
        invocations_per_instance_target=60,
        decode_tokens_per_second=30,
    ),
    # Mid-size instruct chat model: 14B bf16 (~30 GB) needs one 48 GB GPU (g6e) or
    # four 24 GB GPUs.
    CatalogModel(
        model="Qwen2.5-14B-Instruct",
        hf_model_id="Qwen/Qwen2.5-14B-Instruct",
        families=["chat", "invocations"],
        engine="vllm",
        image=VLLM,
        environment=_vllm_env("Qwen/Qwen2.5-14B-Instruct", 32768, **_TOOLS_HERMES),
        max_model_len=32768,
        default_instance_type="ml.g6e.2xlarge",
        instance_types=_48GB_OR_4_GPUS,
        features=Features(tools=True),
        inference_ami_version=AMI_CUDA_13,
        startup_health_check_timeout=1800,
        invocations_per_instance_target=30,
        decode_tokens_per_second=15,
    ),
    # Vision-language model: 8B plus the vision tower and image profiling; a 48 GB GPU
    # keeps a 32k context.
    CatalogModel(
        model="Qwen3-VL-8B-Instruct",
        hf_model_id="Qwen/Qwen3-VL-8B-Instruct",
        families=["chat", "invocations"],
        engine="vllm",
        image=VLLM,
        environment=_vllm_env("Qwen/Qwen3-VL-8B-Instruct", 32768, **_TOOLS_HERMES),
        max_model_len=32768,
        default_instance_type="ml.g6e.xlarge",
        instance_types=_48GB_OR_4_GPUS,
        # vLLM reads its video_url parts too (schemas/content_parts.py).
        features=Features(vision=True, tools=True, video=True),
        inference_ami_version=AMI_CUDA_13,
        startup_health_check_timeout=1800,
        invocations_per_instance_target=30,
        decode_tokens_per_second=25,
    ),
    # Reasoning model (thinks by default; the qwen3 parser returns the thinking as
    # `reasoning_content`). 8B bf16 (~16 GB): a 24 GB GPU leaves too little KV cache
    # for 32k tokens, so the default is a 48 GB GPU.
    CatalogModel(
        model="Qwen3-8B",
        hf_model_id="Qwen/Qwen3-8B",
        families=["chat", "invocations"],
        engine="vllm",
        image=VLLM,
        environment=_vllm_env(
            "Qwen/Qwen3-8B", 32768, SM_VLLM_REASONING_PARSER="qwen3", **_TOOLS_HERMES
        ),
        max_model_len=32768,
        default_instance_type="ml.g6e.xlarge",
        instance_types=_48GB_OR_4_GPUS,
        features=Features(tools=True, reasoning=True),
        inference_ami_version=AMI_CUDA_13,
        startup_health_check_timeout=1800,
        invocations_per_instance_target=20,
        decode_tokens_per_second=25,
    ),
    # Chat on LMI (DJL serving, async vLLM mode: OPTION_ROLLING_BATCH unset). LMI's own
    # model loading timeout is 1200 s, so the health check waits longer than that.
    CatalogModel(
        model="Qwen2.5-7B-Instruct",
        hf_model_id="Qwen/Qwen2.5-7B-Instruct",
        families=["chat", "invocations"],
        engine="lmi",
        image=LMI,
        environment={
            "HF_MODEL_ID": "Qwen/Qwen2.5-7B-Instruct",
            "OPTION_MAX_MODEL_LEN": "32768",
            "OPTION_ENABLE_AUTO_TOOL_CHOICE": "true",
            "OPTION_TOOL_CALL_PARSER": "hermes",
        },
        max_model_len=32768,
        default_instance_type="ml.g5.2xlarge",
        instance_types=[
            "ml.g5.2xlarge",
            "ml.g5.4xlarge",
            "ml.g6.2xlarge",
            "ml.g6.4xlarge",
            "ml.g6e.xlarge",
            "ml.g5.12xlarge",
        ],
        features=Features(tools=True),
        inference_ami_version=AMI_CUDA_13,
        startup_health_check_timeout=1800,
        invocations_per_instance_target=40,
        decode_tokens_per_second=20,
    ),
    # Chat on TGI (in maintenance upstream, kept for users who standardised on it).
    # Prefill and total token limits are set so the launcher's warm-up fits a 24 GB GPU.
    CatalogModel(
        model="Qwen2.5-Coder-7B-Instruct",
        hf_model_id="Qwen/Qwen2.5-Coder-7B-Instruct",
        families=["chat", "invocations"],
        engine="tgi",
        image=TGI,
        environment={
            "HF_MODEL_ID": "Qwen/Qwen2.5-Coder-7B-Instruct",
            "MAX_INPUT_TOKENS": "8192",
            "MAX_TOTAL_TOKENS": "16384",
            "MAX_BATCH_PREFILL_TOKENS": "8192",
        },
        max_model_len=16384,
        default_instance_type="ml.g5.2xlarge",
        instance_types=[
            "ml.g5.2xlarge",
            "ml.g5.4xlarge",
            "ml.g6.2xlarge",
            "ml.g6.4xlarge",
            "ml.g6e.xlarge",
            "ml.g5.12xlarge",
        ],
        features=Features(tools=True),
        inference_ami_version=AMI_CUDA_12,
        startup_health_check_timeout=1800,
        invocations_per_instance_target=40,
        decode_tokens_per_second=20,
    ),
    # Embeddings on TEI (XLM-RoBERTa, 8192 tokens, 1024 dimensions). Not trained for
    # shortened vectors (vLLM's docs use it as the example of a model that refuses
    # `dimensions`), so `dimensions` is a 400. Token ids off: clients send tiktoken ids
    # (LangChain by default), not XLM-RoBERTa's (registry.Features).
    CatalogModel(
        model="bge-m3",
        hf_model_id="BAAI/bge-m3",
        families=["embeddings", "invocations"],
        engine="tei",
        image=TEI,
        environment={"HF_MODEL_ID": "BAAI/bge-m3", "MAX_CLIENT_BATCH_SIZE": "64"},
        max_model_len=8192,
        default_instance_type="ml.g5.xlarge",
        instance_types=_TEI_INSTANCES,
        features=Features(matryoshka=False, token_ids=False, dimensions=1024),
        inference_ami_version=AMI_CUDA_12,
        startup_health_check_timeout=900,
        invocations_per_instance_target=1000,
    ),
    # Reranker on TEI: a sequence-classification model with one label, which TEI
    # serves as a reranker. MAX_CLIENT_BATCH_SIZE caps the documents per request.
    CatalogModel(
        model="bge-reranker-v2-m3",
        hf_model_id="BAAI/bge-reranker-v2-m3",
        families=["rerank", "invocations"],
        engine="tei",
        image=TEI,
        environment={"HF_MODEL_ID": "BAAI/bge-reranker-v2-m3", "MAX_CLIENT_BATCH_SIZE": "128"},
        max_model_len=8192,
        default_instance_type="ml.g5.xlarge",
        instance_types=_TEI_INSTANCES,
        inference_ami_version=AMI_CUDA_12,
        startup_health_check_timeout=900,
        invocations_per_instance_target=500,
    ),
    # Speech to text on the WhisperX DLC: `large-v3-turbo` is faster-whisper's name for
    # the CTranslate2 conversion of openai/whisper-large-v3-turbo, and it resolves in
    # the DLC: its server loads WHISPERX_DEFAULT_MODEL with `whisperx.load_model(name)`
    # (aws/deep-learning-containers scripts/docker/whisperx/server.py `_get_whisper`),
    # which passes the name to faster_whisper.WhisperModel (m-bain/whisperX@2cfd7b7
    # whisperx/asr.py `load_model`), whose download_model looks it up in `_MODELS`:
    # `"large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo"`
    # (SYSTRAN/faster-whisper@65882ee faster_whisper/utils.py line 29, there since
    # v1.1.0; the DLC ships 1.2.1). The container runs one transcription at a time (two
    # more queue), hence the low scaling target.
    CatalogModel(
        model="whisper-large-v3-turbo",
        hf_model_id="openai/whisper-large-v3-turbo",
        families=["audio"],
        engine="whisperx",
        image=WHISPERX,
        environment={"WHISPERX_DEFAULT_MODEL": "large-v3-turbo"},
        default_instance_type="ml.g4dn.xlarge",
        instance_types=[
            "ml.g4dn.xlarge",
            "ml.g4dn.2xlarge",
            "ml.g5.xlarge",
            "ml.g5.2xlarge",
            "ml.g6.xlarge",
        ],
        inference_ami_version=AMI_CUDA_12,
        startup_health_check_timeout=900,
        invocations_per_instance_target=10,
    ),
]

CATALOG: dict[str, CatalogModel] = {m.model: m for m in _MODELS}


def lookup(model: str) -> CatalogModel:
    """The catalog entry of `model`, or a CatalogError naming the valid ones."""
    entry = CATALOG.get(model)
    if entry is not None:
        return entry
    close = difflib.get_close_matches(model, CATALOG, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CatalogError(
        f"unknown model {model!r}{hint}; the catalog has: {', '.join(sorted(CATALOG))}"
    )

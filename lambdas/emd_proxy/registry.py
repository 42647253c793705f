"""The registry: which public model ids exist and where they are served.

The schema is shared: infra/ renders it into the Lambda code asset, emd/ renders it
for `emd serve`, and the proxy loads it once per process (no per-request discovery).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .errors import InvalidRequestError, ModelNotFoundError
from .families import Family

Engine = Literal["vllm", "tgi", "lmi", "tei", "whisperx", "hf_asr"]


class Features(BaseModel):
    """What a model can do. Besides the declared flags, the catalog may set flags of
    one family as extra fields (shown in /v1/models as they are); a flag left out is
    false. Embeddings:
    - `matryoshka`: trained for shortened vectors (Matryoshka Representation
      Learning), so `dimensions` is allowed. Without it `dimensions` is a 400, as vLLM
      answers: cutting the vectors of any other model silently ruins them.
    - `token_ids`: takes `input` as token ids, which the engine reads with the model's
      own tokenizer. Off unless set: OpenAI-style clients send ids of OpenAI's
      tiktoken vocabulary (LangChain's OpenAIEmbeddings does by default), which any
      other model would embed as the wrong tokens.
    - `dimensions` (a number, not a flag): the model's vector size, so a request for
      more `dimensions` is a 400 before any call.
    Chat: `video` and `audio` (content parts beyond images, schemas/content_parts.py)."""

    model_config = ConfigDict(extra="allow")

    tools: bool = False
    vision: bool = False
    reasoning: bool = False

    def flag(self, name: str) -> bool:
        """An extra flag set by the catalog (`matryoshka`, `token_ids`); false when
        absent."""
        return (self.model_extra or {}).get(name) is True

    @property
    def vector_size(self) -> int | None:
        """An embeddings model's vector size (`dimensions`), when the catalog knows it."""
        size = (self.model_extra or {}).get("dimensions")
        return size if type(size) is int and size > 0 else None


class RegistryEntry(BaseModel):
    """One deployed model, e.g. `Qwen3-8B/dev` on endpoint `emd-qwen3-8b-dev`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    model: str
    tag: str
    endpoint: str
    engine: Engine
    families: list[Family]
    features: Features = Field(default_factory=Features)
    # Request defaults the catalog sets for this model (e.g. max_tokens); a client's
    # own value always wins.
    defaults: dict[str, Any] = Field(default_factory=dict)
    # Generated tokens per second one request can count on (a floor, measured on the
    # catalog's default instance). With it a non-stream request whose max_tokens
    # finishes well inside SageMaker's 60 s InvokeEndpoint limit is one plain invoke;
    # without it (or without max_tokens) it streams from the engine and is folded.
    decode_tokens_per_second: float | None = Field(default=None, gt=0)
    # Scale to zero (`scale_to_zero` in the model's context): the model is this
    # inference component on `endpoint`, which every invoke must name; while it is at
    # zero copies SageMaker refuses invokes and the proxy wakes it (wake.py).
    inference_component: str | None = None
    # How long a wake from zero copies usually takes, in seconds (the catalog's
    # estimate): the Retry-After of a request that cannot wait, until this process has
    # measured wakes of its own.
    wake_seconds: float | None = Field(default=None, gt=0)
    created: int = 0
    # Free-form facts shown in /v1/models (e.g. how a local model ranks documents).
    metadata: dict[str, Any] = Field(default_factory=dict)


_entries_adapter = TypeAdapter(list[RegistryEntry])


class Registry:
    """Resolves public ids, honouring which models a key may see."""

    def __init__(self, entries: Iterable[RegistryEntry]) -> None:
        self._by_id: dict[str, RegistryEntry] = {}
        self._by_model: dict[str, list[RegistryEntry]] = {}
        for entry in entries:
            if entry.id in self._by_id:
                raise ValueError(f"duplicate model id in registry: {entry.id}")
            self._by_id[entry.id] = entry
            self._by_model.setdefault(entry.model, []).append(entry)

    @classmethod
    def from_json(cls, text: str | bytes) -> Registry:
        return cls(_entries_adapter.validate_json(text))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Registry:
        """`EMD_REGISTRY_FILE` (a JSON file in the code asset) or inline `EMD_REGISTRY`."""
        path = environ.get("EMD_REGISTRY_FILE")
        if path:
            return cls.from_json(Path(path).read_bytes())
        return cls.from_json(environ.get("EMD_REGISTRY") or "[]")

    def to_json(self) -> str:
        return _entries_adapter.dump_json(list(self._by_id.values()), indent=2).decode()

    def entries(self, visible: frozenset[str] | None = None) -> list[RegistryEntry]:
        return [e for e in self._by_id.values() if visible is None or e.id in visible]

    def resolve(
        self, model_id: str, family: Family | None = None, visible: frozenset[str] | None = None
    ) -> RegistryEntry:
        """Public id (or bare model name with exactly one tag) -> entry, or the
        client's error: 404 when unknown or invisible, 400 when the family is wrong."""
        entry = self._by_id.get(model_id)
        if entry is None:
            tags = [e for e in self._by_model.get(model_id, []) if _can_see(e, visible)]
            entry = tags[0] if len(tags) == 1 else None
        if entry is None or not _can_see(entry, visible):
            raise ModelNotFoundError(f"The model `{model_id}` does not exist.", param="model")
        if family is not None and family not in entry.families:
            raise InvalidRequestError(
                f"The model `{entry.id}` does not support {family}; it serves: "
                f"{', '.join(entry.families)}.",
                param="model",
                code="wrong_model_family",
            )
        return entry


def _can_see(entry: RegistryEntry, visible: frozenset[str] | None) -> bool:
    return visible is None or entry.id in visible


DEFAULT_ENDPOINT_PREFIX = "emd"
MAX_ENDPOINT_NAME = 63  # SageMaker's limit


def endpoint_name(model: str, tag: str, prefix: str = DEFAULT_ENDPOINT_PREFIX) -> str:
    """`<prefix>-<model>-<tag>` lowercased, non-alphanumerics as `-`, at most 63
    characters (SageMaker's limit): longer names are cut and end with a 6-hex hash of
    the full name, so names that differ anywhere (the prefix included) stay distinct.

    A deployment passes its stack prefix (`emd:prefix`, default `EMD`, which gives
    `emd-<model>-<tag>`); `emd serve` keeps the default."""
    name = re.sub(r"[^a-z0-9]+", "-", f"{prefix}-{model}-{tag}".lower()).strip("-")
    if len(name) <= MAX_ENDPOINT_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: MAX_ENDPOINT_NAME - 7].rstrip('-')}-{digest}"

"""POST /v1/embeddings: batches large inputs into the container's batch size (order
kept), shortens vectors only for Matryoshka models (natively where the engine can),
encodes base64 as OpenAI does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..engines import adapter
from ..engines.adapters import EmbeddingsAdapter
from ..errors import InvalidRequestError
from ..jsonio import StrictJsonRoute
from ..openapi import BEARER_AUTH, ERROR_RESPONSES
from ..registry import RegistryEntry
from ..schemas.embeddings import EmbeddingList, EmbeddingsRequest
from ..state import principal, services
from ..validation import bound_error
from ..vectors import estimate_tokens, shorten, to_base64

router = APIRouter(route_class=StrictJsonRoute, responses=ERROR_RESPONSES)

# LangChain's OpenAIEmbeddings tokenises with tiktoken and sends the ids unless this
# switch is off; named in the 400 so its users know what to change.
LANGCHAIN_SWITCH = "check_embedding_ctx_length=False"


def check_input_kind(entry: RegistryEntry, engine: EmbeddingsAdapter, token_ids: bool) -> None:
    """Token ids only where the engine takes them and the catalog says the model's
    clients send its own tokenizer's ids (registry.Features); a clear 400 otherwise."""
    if token_ids and not (engine.accepts_token_ids and entry.features.flag("token_ids")):
        raise InvalidRequestError(
            f"The model `{entry.id}` takes text input only, not token ids: ids would be "
            "read with the model's own tokenizer, and OpenAI-style clients send ids from "
            "OpenAI's tiktoken. Send the text itself (LangChain's OpenAIEmbeddings: set "
            f"{LANGCHAIN_SWITCH}).",
            param="input",
        )


def check_dimensions(entry: RegistryEntry, dimensions: int | None) -> None:
    """`dimensions` only for Matryoshka models, with vLLM's own message, and at most
    the model's vector size (when the catalog knows it), before any call."""
    if dimensions is None:
        return
    if not entry.features.flag("matryoshka"):
        raise InvalidRequestError(
            f'Model "{entry.id}" does not support matryoshka representation, changing '
            "output dimensions will lead to poor results.",
            param="dimensions",
        )
    size = entry.features.vector_size
    if size is not None and dimensions > size:
        raise bound_error("dimensions", dimensions, "<=", size)


def fit_dimensions(vectors: list[list[float]], dimensions: int | None) -> list[list[float]]:
    """Vectors of exactly `dimensions` values: an engine that shortened them natively
    leaves them as they are; longer ones are cut and renormalised here; a request for
    more values than the model has is a 400 (vLLM would return the full vector)."""
    if dimensions is None:
        return vectors
    return [v if len(v) == dimensions else shorten(v, dimensions) for v in vectors]


@router.post(
    "/v1/embeddings",
    response_model=Any,  # the dict as is, unvalidated: see openapi.py
    responses={200: {"model": EmbeddingList}},
    openapi_extra=BEARER_AUTH,
)
async def create_embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
    svc = services(request)
    entry = svc.registry.resolve(body.model, "embeddings", principal(request).models)
    engine = adapter(entry, "embeddings")
    inputs = body.inputs()
    token_ids = isinstance(inputs[0], list)
    check_input_kind(entry, engine, token_ids)
    check_dimensions(entry, body.dimensions)
    native = body.dimensions if engine.native_dimensions else None
    extra = body.model_extra or {}
    size = engine.max_batch
    batches = [inputs[i : i + size] for i in range(0, len(inputs), size)]
    calls = [engine.build(batch, native, extra) for batch in batches]  # type: ignore[arg-type]
    try:
        answers = await svc.invoke_all(entry, calls, request=request)
    except InvalidRequestError as exc:
        # The engine refused the size it was asked for (TEI: larger than the model's
        # vectors; vLLM: not one of the model's matryoshka_dimensions).
        if native is not None and exc.param is None and "dimension" in exc.message.lower():
            exc.param = "dimensions"
        raise
    parsed = [engine.parse(a.body, len(b)) for a, b in zip(answers, batches, strict=True)]
    vectors = fit_dimensions([v for batch in parsed for v in batch.vectors], body.dimensions)
    encode = to_base64 if body.encoding_format == "base64" else None
    if all(p.prompt_tokens is not None for p in parsed):
        tokens = sum(p.prompt_tokens or 0 for p in parsed)
    elif token_ids:
        tokens = sum(len(i) for i in inputs)
    else:
        tokens = sum(estimate_tokens(i) for i in inputs)  # type: ignore[arg-type]
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
            for i, v in enumerate(vectors)
        ],
        "model": entry.id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }

"""Which non-stream requests go as one plain InvokeEndpoint (generation.py)."""

from __future__ import annotations

from typing import Any

import pytest

from emd_proxy.generation import PLAIN_INVOKE_BUDGET_S, plain_invoke
from emd_proxy.registry import RegistryEntry
from emd_proxy.schemas.chat import ChatCompletionRequest

SPEED = 25.0  # tokens per second
FITS = int(PLAIN_INVOKE_BUDGET_S * SPEED)


def entry(speed: float | None = SPEED, **defaults: Any) -> RegistryEntry:
    return RegistryEntry(
        id="Qwen3-8B/dev",
        model="Qwen3-8B",
        tag="dev",
        endpoint="emd-qwen3-8b-dev",
        engine="vllm",
        families=["chat"],
        defaults=defaults,
        decode_tokens_per_second=speed,
    )


def chat(**body: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "Qwen3-8B/dev", "messages": [{"role": "user", "content": "hi"}], **body}
    )


@pytest.mark.parametrize(
    ("model", "request_body", "plain"),
    [
        (entry(), {"max_tokens": FITS}, True),
        (entry(), {"max_tokens": FITS + 1}, False),  # might outrun the 60 s limit
        (entry(), {"max_completion_tokens": FITS}, True),
        (entry(), {}, False),  # no bound: the engine may write until the context is full
        (entry(max_tokens=FITS), {}, True),  # the catalog's default bounds it
        (entry(max_tokens=FITS), {"max_tokens": FITS * 2}, False),  # the client's wins
        (entry(speed=None), {"max_tokens": 10}, False),  # speed unknown
        (entry(), {"prompt_logprobs": 1}, True),  # only the non-stream path has them
    ],
)
def test_plain_invoke(model: RegistryEntry, request_body: dict[str, Any], plain: bool) -> None:
    assert plain_invoke(model, chat(**request_body)) is plain

from __future__ import annotations

import json

import pytest

from emd_proxy.engines import chat_engine
from emd_proxy.engines.vllm import VllmEngine
from emd_proxy.errors import InvalidRequestError
from emd_proxy.registry import RegistryEntry
from emd_proxy.schemas.chat import ChatCompletionRequest

ENTRY = RegistryEntry(
    id="Qwen3-8B/dev",
    model="Qwen3-8B",
    tag="dev",
    endpoint="emd-qwen3-8b-dev",
    engine="vllm",
    families=["chat"],
    defaults={"max_tokens": 256, "temperature": 0.6, "top_k": 20},
)
HI = [{"role": "user", "content": "hi"}]
engine = VllmEngine()


def payload(**body) -> dict:
    request = ChatCompletionRequest.model_validate({"model": ENTRY.id, "messages": HI, **body})
    return json.loads(engine.build_payload(request, ENTRY))


# --- build_payload ---------------------------------------------------------------------


def test_chat_engine_picks_vllm() -> None:
    assert isinstance(chat_engine(ENTRY), VllmEngine)
    with pytest.raises(InvalidRequestError):
        chat_engine(ENTRY.model_copy(update={"engine": "tei"}))


def test_model_is_dropped() -> None:
    assert "model" not in payload()


def test_unknown_fields_are_passed_through() -> None:
    body = payload(repetition_penalty=1.1, chat_template_kwargs={"enable_thinking": False})
    assert body["repetition_penalty"] == 1.1
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


def test_message_extras_and_content_parts_survive() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "look"}], "x_extra": 1},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
    ]
    assert payload(messages=messages)["messages"] == messages


def test_defaults_apply_only_where_the_client_set_nothing() -> None:
    body = payload(temperature=0.0, top_k=5)
    assert body["temperature"] == 0.0  # a falsy client value still wins
    assert body["top_k"] == 5
    assert body["max_tokens"] == 256
    assert payload()["temperature"] == 0.6


STREAMED = {"stream", "stream_options"}


def test_unset_fields_are_not_sent() -> None:
    assert set(payload()) == {"messages", "max_tokens", "temperature", "top_k"} | STREAMED


def test_no_defaults_means_no_hidden_max_tokens() -> None:
    request = ChatCompletionRequest.model_validate({"model": "m", "messages": HI})
    plain = ENTRY.model_copy(update={"defaults": {}})
    assert json.loads(engine.build_payload(request, plain)) == {
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_the_engine_always_streams_and_reports_usage() -> None:
    assert payload(stream=True)["stream_options"] == {"include_usage": True}
    kept = payload(stream=True, stream_options={"include_usage": False, "continuous": True})
    assert kept["stream_options"] == {"include_usage": True, "continuous": True}
    assert payload(stream=False)["stream"] is True
    assert payload()["stream_options"] == {"include_usage": True}

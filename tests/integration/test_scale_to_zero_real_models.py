"""Scale to zero with real model loads: SmolLM2 (llama.cpp), e5 and whisper are
unloaded for real (their weights freed), and a request through the gateway wakes each
one: the no-capacity refusal, the wake through the local control plane, the model
loading again, then the answer, read with the openai SDK. Covers the held non-stream
paths (embeddings, rerank, transcription) beside the streamed chat."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from emd.local.gateway import LocalGateway
from emd_proxy.settings import Settings

from .conftest import E5, KEY, SMOL, WHISPER, start_s2z_gateway

SPEECH = Path(__file__).parent.parent / "data" / "speech.wav"


@pytest.fixture(scope="module")
def real() -> Iterator[LocalGateway]:
    gw = start_s2z_gateway(
        Settings(upstream_max_attempts=1, wake_poll_seconds=0.1, keepalive_seconds=0.2),
        idle_seconds=600.0,  # only the tests scale models to zero
        models=(SMOL, E5, WHISPER),
    )
    yield gw
    gw.stop()


def refusals(gw: LocalGateway) -> int:
    assert gw.stack.emulator is not None
    return gw.stack.emulator.stats.no_capacity_failures


def row_of(gw: LocalGateway, component: str) -> dict[str, object]:
    assert gw.stack.components is not None
    return next(r for r in gw.stack.components.snapshot() if r["name"] == component)


def to_zero(gw: LocalGateway, model_id: str) -> tuple[str, int]:
    """The model's component, unloaded, and the refusals counted so far."""
    component = gw.registry.resolve(model_id).inference_component
    assert component is not None
    gw.stack.scale_to_zero(component)
    row = row_of(gw, component)
    assert (row["current_copy_count"], row["desired_copy_count"]) == (0, 0)
    return component, refusals(gw)


def woke(gw: LocalGateway, component: str, refused_before: int) -> None:
    """The call was refused for no capacity, and the model loaded again."""
    assert refusals(gw) > refused_before
    row = row_of(gw, component)
    assert row["status"] == "InService" and row["current_copy_count"] == 1
    assert isinstance(row["last_wake_seconds"], float)


def sdk(gw: LocalGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0, timeout=120)


def test_a_streamed_chat_wakes_smollm2_and_answers(real: LocalGateway) -> None:
    component, refused = to_zero(real, SMOL)
    stream = sdk(real).chat.completions.create(
        model=SMOL,
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
        temperature=0,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.strip()
    woke(real, component, refused)


def test_embeddings_wait_for_e5_to_load_again(real: LocalGateway) -> None:
    component, refused = to_zero(real, E5)
    answer = sdk(real).embeddings.create(model=E5, input=["scale to zero"])
    assert len(answer.data[0].embedding) == 384
    woke(real, component, refused)


def test_rerank_waits_for_e5_to_load_again(real: LocalGateway) -> None:
    component, refused = to_zero(real, E5)
    answer = httpx.post(
        f"{real.base_url}/rerank",
        headers={"Authorization": f"Bearer {KEY}"},
        json={
            "model": E5,
            "query": "What is the capital of France?",
            "documents": ["Bananas are yellow.", "Paris is the capital of France."],
        },
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["index"] == 1
    woke(real, component, refused)


def test_a_transcription_waits_for_whisper_to_load_again(real: LocalGateway) -> None:
    component, refused = to_zero(real, WHISPER)
    text = (
        sdk(real)
        .audio.transcriptions.create(model=WHISPER, file=("speech.wav", SPEECH.read_bytes()))
        .text
    )
    assert text.strip()
    woke(real, component, refused)

"""The audio routes in-process on a fake SageMaker: streamed transcript events, which
engines and models translate, and the 4 MiB upload limit with Lambda's 6 MB body
limit above it (the integration gateway runs with a smaller body limit)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent
from pydantic_core import from_json, to_json

from emd_proxy.app import create_app
from emd_proxy.auth import KeyStore
from emd_proxy.registry import Features, Registry, RegistryEntry
from emd_proxy.routes.audio import _deltas
from emd_proxy.sagemaker_client import UpstreamResponse
from emd_proxy.settings import Settings

KEY = "sk-test"
SEGMENTS = [
    {"text": " Hello world,", "start": 0.0, "end": 1.2, "avg_logprob": -0.2},
    {"text": "", "start": 1.2, "end": 1.3, "avg_logprob": -0.2},
    {"text": " this is a test.", "start": 1.3, "end": 2.5, "avg_logprob": -0.3},
]
TEXT = "Hello world, this is a test."


def entry(model: str, engine: str, **features: bool) -> RegistryEntry:
    return RegistryEntry(
        id=f"{model}/dev", model=model, tag="dev", endpoint=f"emd-{model.replace('.', '-')}-dev",
        engine=engine, families=["audio"], features=Features(**features),  # type: ignore[arg-type]
    )  # fmt: skip


TURBO = entry("whisper-large-v3-turbo", "whisperx")
TINY_EN = entry("whisper-tiny.en", "whisperx")
WX_TRANSLATE = entry("whisper-large-v2", "whisperx", translate=True)
VLLM = entry("whisper-large-v3", "vllm", translate=True)
HF = entry("whisper-small", "hf_asr", translate=True)


class FakeSageMaker:
    """A WhisperX-style answer in the asked format; records each call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def invoke(self, endpoint: str, body: bytes, **kw: Any) -> UpstreamResponse:
        self.calls.append({"endpoint": endpoint, "body": body, **kw})
        if b'name="response_format"\r\n\r\nverbose_json' in body:
            answer = {"task": "transcribe", "language": "en", "duration": 2.5,
                      "text": TEXT, "segments": SEGMENTS}  # fmt: skip
            return UpstreamResponse(to_json(answer), "application/json")
        return UpstreamResponse(to_json({"text": TEXT}), "application/json")

    async def aclose(self) -> None:
        pass


@pytest.fixture
def fake() -> FakeSageMaker:
    return FakeSageMaker()


@pytest.fixture
def client(fake: FakeSageMaker) -> TestClient:
    registry = Registry([TURBO, TINY_EN, WX_TRANSLATE, VLLM, HF])
    app = create_app(Settings(), registry=registry, keys=KeyStore.static({"d": KEY}),
                     sagemaker=fake)  # type: ignore[arg-type]  # fmt: skip
    return TestClient(app, headers={"Authorization": f"Bearer {KEY}"})


# A WAV header: the route refuses files whose first bytes are no audio format.
WAV_HEAD = b"RIFF\x24\x08\x00\x00WAVEfmt "


def post(client: TestClient, route: str, model: str, data: bytes = WAV_HEAD, **fields: str) -> Any:
    return client.post(
        f"/v1/audio/{route}",
        data={"model": model, **fields},
        files={"file": ("a.wav", data, "audio/wav")},
    )


def test_stream_is_one_delta_per_segment_then_done(client: TestClient, fake: Any) -> None:
    response = post(client, "transcriptions", TURBO.id, stream="true")
    assert response.status_code == 200
    blocks = response.text.split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""]
    events = [from_json(b.removeprefix("data: ")) for b in blocks[:-2]]
    deltas = [TranscriptionTextDeltaEvent.model_validate(e) for e in events[:-1]]
    done = TranscriptionTextDoneEvent.model_validate(events[-1])
    assert [d.delta for d in deltas] == ["Hello world,", " this is a test."]
    assert done.text == TEXT
    # The container was asked for segments and never told to stream.
    body = fake.calls[0]["body"]
    assert b"verbose_json" in body and b'name="stream"' not in body


def test_stream_false_is_not_forwarded(client: TestClient, fake: Any) -> None:
    response = post(client, "transcriptions", TURBO.id, stream="false")
    assert response.json() == {"text": TEXT}
    assert b'name="stream"' not in fake.calls[0]["body"]


def test_stream_must_be_a_boolean(client: TestClient) -> None:
    response = post(client, "transcriptions", TURBO.id, stream="maybe")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"


@pytest.mark.parametrize(
    ("text", "pieces", "deltas"),
    [
        (TEXT, [s["text"] for s in SEGMENTS], ["Hello world,", " this is a test."]),
        ("one", ["one"], ["one"]),
        ("a  b", ["a", "", "b"], ["a", "  b"]),  # WhisperX joins an empty segment too
        ("abc", ["zzz"], ["abc"]),  # segments that do not match the text: one delta
        ("", [], []),
    ],
)
def test_deltas_join_to_the_text(text: str, pieces: list[str], deltas: list[str]) -> None:
    assert _deltas(text, pieces) == deltas
    assert "".join(deltas) == text


def test_five_mib_is_the_routes_413_naming_the_file(client: TestClient) -> None:
    """Under Lambda's 6 MB body limit, over the 4 MiB audio limit."""
    response = post(client, "transcriptions", TURBO.id, b"\0" * (5 * 1024 * 1024))
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("request_too_large", "file")
    assert "4 MiB" in error["message"] and "Split" in error["message"]


@pytest.mark.parametrize(
    ("model", "why"),
    [
        (TINY_EN, "English-only"),
        (TURBO, "not deployed to translate"),
        (HF, "hf_asr"),
    ],
)
def test_models_that_cannot_translate(client: TestClient, model: RegistryEntry, why: str) -> None:
    response = post(client, "translations", model.id)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "model"
    assert model.id in error["message"] and why in error["message"]


def test_vllm_translates_through_its_translations_route(client: TestClient, fake: Any) -> None:
    response = post(client, "translations", VLLM.id)
    assert response.json() == {"text": TEXT}
    assert fake.calls[0]["custom_attributes"] == "route=/v1/audio/translations"


def test_whisperx_translation_verbose_json(client: TestClient) -> None:
    response = post(client, "translations", WX_TRANSLATE.id, response_format="verbose_json")
    assert response.json()["task"] == "translate"
    assert response.json()["text"] == TEXT


def test_openapi_declares_translations(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    form = spec["paths"]["/v1/audio/translations"]["post"]["requestBody"]["content"]
    assert "stream" not in form["multipart/form-data"]["schema"]["properties"]
    answers = spec["paths"]["/v1/audio/transcriptions"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in answers

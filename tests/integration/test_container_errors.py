"""What a container's error looks like to the client, end to end (issue 17, items 1
and 2): a model failure is one fixed message naming the request (nothing the
container wrote: no account id, endpoint name, log group or traceback), on every
family, streamed or not; a request the engine refused inside its stream is a 400 the
SDK does not retry.

A scripted container stands behind one emulator endpoint and answers what each test
queues, byte for byte as the engines write it (TGI router/src/infer/mod.rs
`into_openai_event`; vLLM `create_streaming_error_response`; LMI's JSON lines); the
real TGI fake answers the validation cases of the issue."""

from __future__ import annotations

import io
import json
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from emd.local.gateway import LocalGateway, start_local_gateway
from emd.local.servers import BackgroundServers
from emd_proxy.registry import RegistryEntry
from emd_proxy.settings import Settings

from .conftest import TGI, endpoint_of

KEY = "sk-container-errors"
ENDPOINT = "emd-scripted-local"
ACCOUNT = "123456789012"
# A container's failure text carrying everything a caller must never read.
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/opt/conda/lib/python3.11/site-packages/vllm/engine.py", line 7, in step\n'
    "RuntimeError: CUDA error: an illegal memory access"
)
LEAKY = (
    f"worker died on {ENDPOINT} (account {ACCOUNT}, 1234-5678-9012); logs in "
    f"/aws/sagemaker/Endpoints/{ENDPOINT}, arn:aws:logs:us-east-1:{ACCOUNT}:log-group:x\n"
    f"{TRACEBACK}"
)
SECRETS = (ENDPOINT, ACCOUNT, "1234-5678-9012", "/aws/sagemaker", "arn:aws", "Traceback",
           "CUDA", "/opt/conda", "worker died")  # fmt: skip
HI = [{"role": "user", "content": "hi"}]
SPEECH = Path(__file__).parent.parent / "data" / "speech.wav"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


class ScriptedContainer:
    """Answers each /invocations with the next queued answer."""

    def __init__(self) -> None:
        self.queue: deque[Answer] = deque()

    def app(self) -> Starlette:
        async def ping(_: Request) -> Response:
            return PlainTextResponse("")

        async def invocations(request: Request) -> Response:
            await request.body()
            answer = self.queue.popleft() if self.queue else Answer(500, b"nothing queued")
            return Response(answer.body, answer.status, media_type=answer.content_type)

        return Starlette(
            routes=[
                Route("/ping", ping, methods=["GET"]),
                Route("/invocations", invocations, methods=["POST"]),
            ]
        )


def entry(model: str, engine: str, families: list[str], **extra: object) -> RegistryEntry:
    return RegistryEntry(
        id=f"{model}/local",
        model=model,
        tag="local",
        endpoint=ENDPOINT,
        engine=engine,  # type: ignore[arg-type]
        families=families,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


ENTRIES = [
    entry("tgi-s", "tgi", ["chat"]),
    # max_tokens within reach: a plain InvokeEndpoint instead of a folded stream.
    entry("tgi-plain-s", "tgi", ["chat"], decode_tokens_per_second=1000.0),
    entry("vllm-s", "vllm", ["chat"]),
    entry("vllm-embed-s", "vllm", ["embeddings"]),
    entry("lmi-s", "lmi", ["chat"]),
    entry("tei-embed-s", "tei", ["embeddings"]),
    entry("tei-rerank-s", "tei", ["rerank"]),
    entry("whisperx-s", "whisperx", ["audio"]),
    entry("raw-s", "vllm", ["invocations"]),
]


@dataclass
class Scripted:
    gateway: LocalGateway
    container: ScriptedContainer

    def queue(self, status: int, body: bytes | str, content_type: str = "application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.container.queue.append(Answer(status, data, content_type))

    def calls(self) -> int:
        emulator = self.gateway.stack.emulator
        assert emulator is not None
        return emulator.stats.by_endpoint.get(ENDPOINT, 0)

    def sdk(self, retries: int = 0) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.base_url, api_key=KEY, max_retries=retries)


@pytest.fixture(scope="module")
def scripted() -> Iterator[Scripted]:
    container = ScriptedContainer()
    servers = BackgroundServers("scripted-container")
    url = servers.add(container.app())
    servers.start()
    gw = start_local_gateway(
        [], keys={"default": KEY}, settings=Settings(upstream_max_attempts=1), extra_entries=ENTRIES
    )
    assert gw.stack.emulator is not None
    gw.stack.emulator.endpoints[ENDPOINT] = url
    yield Scripted(gw, container)
    gw.stop()
    servers.stop()


@pytest.fixture(autouse=True)
def _empty_queue(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "scripted" in request.fixturenames:
        request.getfixturevalue("scripted").container.queue.clear()


def sse(*events: dict) -> str:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def chunk(content: str) -> dict:
    return {
        "object": "chat.completion.chunk",
        "id": "c1",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                     "logprobs": None, "finish_reason": None}],
    }  # fmt: skip


def fixed(message: str, request_id: str, streaming: bool = False) -> None:
    message = re.sub(r"^Error code: \d+ - ", "", message)  # the SDK's prefix
    what = "The model failed while streaming" if streaming else "The model failed"
    assert message == f"{what} (request {request_id}). The details are in the gateway's logs."


def assert_no_leak(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} reached the client: {text[:300]}"


# --- item 2: the engine refused the request inside its stream -> 400, no retries ---


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stop": ["a", "b", "c", "d", "e"]},
         "Input validation error: `stop` supports up to 4 stop sequences. Given: 5"),
        ({"logprobs": True, "top_logprobs": 20},
         "Input validation error: `top_n_tokens` must be >= 0 and <= 5. Given: 20"),
    ],
    ids=["five-stops", "top_logprobs-20"],
)  # fmt: skip
def test_tgi_fakes_streamed_validation_error_is_a_400_not_retried(
    gateway: LocalGateway, kwargs: dict, message: str
) -> None:
    """The issue's cases on the TGI fake: its error event inside a 200 stream."""
    emulator = gateway.stack.emulator
    assert emulator is not None
    endpoint = endpoint_of(gateway, TGI)
    before = emulator.stats.by_endpoint.get(endpoint, 0)
    sdk = openai.OpenAI(base_url=gateway.base_url, api_key="sk-test-default", max_retries=2)
    with pytest.raises(openai.BadRequestError) as info:
        for _ in sdk.chat.completions.create(model=TGI, messages=HI, stream=True, **kwargs):
            pass
    assert info.value.status_code == 400
    assert info.value.message.endswith(message)  # the SDK prefixes "Error code: 400 - "
    assert emulator.stats.by_endpoint[endpoint] - before == 1  # the SDK did not retry
    # `top_p: 1` (no filtering; TGI refuses it) is left out, so the same stream works.
    answer = sdk.chat.completions.create(model=TGI, messages=HI, stream=True, top_p=1.0)
    assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices) == "hi"


TGI_422 = "Input validation error: `top_n_tokens` must be >= 0 and <= 5. Given: 20"
REFUSALS = [
    # TGI >= 2.4 (router/src/infer/mod.rs InferError::into_openai_event).
    ("tgi-s", sse({"error": {"message": TGI_422, "http_status_code": 422}}), None),
    # TGI before 2.4: ErrorResponse with error_type.
    ("tgi-s", sse({"error": TGI_422, "error_type": "validation"}), None),
    # vLLM's streamed ErrorInfo keeps its param.
    ("vllm-s", sse({"error": {"message": "top_logprobs must be <= 20", "type":
     "BadRequestError", "param": "top_logprobs", "code": 400}}), "top_logprobs"),
    # LMI: vLLM's error line, without `data:`, ending with an empty line.
    ("lmi-s", json.dumps({"error": {"message": "top_logprobs must be <= 20", "type":
     "BadRequestError", "param": "top_logprobs", "code": 400}}) + "\n\n", "top_logprobs"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "body", "param"), REFUSALS, ids=["tgi", "tgi-old", "vllm", "lmi"]
)
def test_an_engines_4xx_inside_its_stream_is_a_400_not_retried(
    scripted: Scripted, model: str, body: str, param: str | None
) -> None:
    ctype = "application/jsonlines" if model == "lmi-s" else "text/event-stream"
    before = scripted.calls()
    for _ in range(3):  # enough for every retry the SDK could make
        scripted.queue(200, body, ctype)
    with pytest.raises(openai.BadRequestError) as info:
        for _ in scripted.sdk(retries=2).chat.completions.create(
            model=f"{model}/local", messages=HI, stream=True
        ):
            pass
    assert info.value.status_code == 400
    assert info.value.code is None
    assert info.value.param == param
    assert "must be" in info.value.message
    assert scripted.calls() - before == 1


def test_tgi_overloaded_inside_its_stream_is_a_429(scripted: Scripted) -> None:
    scripted.queue(
        200,
        sse({"error": {"message": "Model is overloaded", "http_status_code": 422}}),
        "text/event-stream",
    )
    with pytest.raises(openai.RateLimitError) as info:
        scripted.sdk().chat.completions.create(model="tgi-s/local", messages=HI, stream=True)
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "event",
    [
        {"error": {"message": f"Request failed during generation: {LEAKY}",
                   "http_status_code": 422}},
        {"error": f"Request failed during generation: {LEAKY}", "error_type": "generation"},
        {"error": {"message": LEAKY, "type": "InternalServerError", "param": None,
                   "code": 500}},
    ],
    ids=["tgi", "tgi-old", "vllm"],
)  # fmt: skip
def test_an_engines_failure_first_in_its_stream_is_a_fixed_502(
    scripted: Scripted, event: dict
) -> None:
    model = "vllm-s/local" if "type" in event.get("error", {}) else "tgi-s/local"
    scripted.queue(200, sse(event), "text/event-stream")
    with pytest.raises(openai.InternalServerError) as info:
        scripted.sdk().chat.completions.create(model=model, messages=HI, stream=True)
    assert info.value.status_code == 502
    fixed(info.value.message, info.value.response.headers["x-request-id"])
    assert_no_leak(info.value.response.text)


# --- item 1: a model failure reaches no client verbatim ------------------------------


def leaky_500() -> str:
    return json.dumps({"error": {"message": LEAKY, "type": "InternalServerError", "code": 500}})


def test_a_5xx_with_details_is_a_fixed_message_and_logged(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.queue(500, leaky_500())
    with pytest.raises(openai.InternalServerError) as info:
        scripted.sdk().chat.completions.create(model="tgi-s/local", messages=HI)
    request_id = info.value.response.headers["x-request-id"]
    fixed(info.value.message, request_id)
    assert_no_leak(info.value.response.text)
    logged = [r for r in caplog.records if r.getMessage() == "model failed"]
    assert [r.request_id for r in logged] == [request_id]
    assert "worker died" in logged[0].container_message  # the operator's copy


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["tgi-s", "tgi-plain-s", "vllm-s", "lmi-s"])
@pytest.mark.parametrize("status", [500, 503, 424])
def test_chat_5xx_never_forwards_the_containers_text(
    scripted: Scripted, model: str, stream: bool, status: int
) -> None:
    # TGI's generation failure is a 424 with error_type "generation".
    body = (
        json.dumps({"error": f"Request failed during generation: {LEAKY}", "error_type":
                    "generation"}) if status == 424 else leaky_500()
    )  # fmt: skip
    scripted.queue(status, body)
    with pytest.raises(openai.InternalServerError) as info:
        scripted.sdk().chat.completions.create(
            model=f"{model}/local", messages=HI, stream=stream, max_tokens=8
        )
    assert info.value.status_code == 502
    fixed(info.value.message, info.value.response.headers["x-request-id"])
    assert_no_leak(info.value.response.text)


def test_plain_text_traceback_5xx(scripted: Scripted) -> None:
    scripted.queue(500, LEAKY, "text/plain")
    with pytest.raises(openai.InternalServerError) as info:
        scripted.sdk().chat.completions.create(model="vllm-s/local", messages=HI)
    assert_no_leak(info.value.response.text)


@pytest.mark.parametrize("model", ["tei-embed-s", "vllm-embed-s"])
def test_embeddings_5xx(scripted: Scripted, model: str) -> None:
    scripted.queue(500, leaky_500())
    with pytest.raises(openai.InternalServerError) as info:
        scripted.sdk().embeddings.create(model=f"{model}/local", input=["a"])
    fixed(info.value.message, info.value.response.headers["x-request-id"])
    assert_no_leak(info.value.response.text)


def test_rerank_5xx(scripted: Scripted) -> None:
    scripted.queue(500, json.dumps({"error": LEAKY, "error_type": "backend"}))
    with httpx.Client(base_url=scripted.gateway.base_url, timeout=30) as http:
        response = http.post(
            "/rerank",
            json={"model": "tei-rerank-s/local", "query": "q", "documents": ["a", "b"]},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert response.status_code == 502
    fixed(response.json()["error"]["message"], response.headers["x-request-id"])
    assert_no_leak(response.text)


@pytest.mark.parametrize("stream", [False, True])
def test_audio_5xx(scripted: Scripted, stream: bool) -> None:
    scripted.queue(500, json.dumps({"detail": LEAKY}))
    with pytest.raises(openai.InternalServerError) as info:
        result = scripted.sdk().audio.transcriptions.create(
            model="whisperx-s/local", file=("speech.wav", io.BytesIO(SPEECH.read_bytes())),
            stream=stream,
        )  # fmt: skip
        for _ in result if stream else ():
            pass
    fixed(info.value.message, info.value.response.headers["x-request-id"])
    assert_no_leak(info.value.response.text)


@pytest.mark.parametrize("stream", [False, True])
def test_invocations_5xx(scripted: Scripted, stream: bool) -> None:
    scripted.queue(500, leaky_500())
    with httpx.Client(base_url=scripted.gateway.base_url, timeout=30) as http:
        response = http.post(
            "/invocations",
            json={"model": "raw-s/local", "input": {"messages": HI}, "stream": stream},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert response.status_code == 502
    fixed(response.json()["error"]["message"], response.headers["x-request-id"])
    assert_no_leak(response.text)


def test_messages_api_5xx(scripted: Scripted) -> None:
    claude = anthropic.Anthropic(
        base_url=scripted.gateway.base_url.removesuffix("/v1"), api_key=KEY, max_retries=0
    )
    for stream in (False, True):
        scripted.queue(500, leaky_500())
        with pytest.raises(anthropic.APIStatusError) as info:
            claude.messages.create(model="tgi-s/local", max_tokens=8, messages=HI, stream=stream)
        assert info.value.status_code == 502
        fixed(info.value.body["error"]["message"], info.value.response.headers["x-request-id"])  # type: ignore[index]
        assert_no_leak(info.value.response.text)


# --- mid-stream failures --------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        {"error": {"message": f"Request failed during generation: {LEAKY}",
                   "http_status_code": 422}},
        {"error": {"message": LEAKY, "type": "InternalServerError", "param": None,
                   "code": 500}},
    ],
    ids=["tgi", "vllm"],
)  # fmt: skip
def test_an_engines_failure_mid_stream_is_a_fixed_error_event(
    scripted: Scripted, event: dict
) -> None:
    scripted.queue(200, sse(chunk("Hel"), event), "text/event-stream")
    with httpx.Client(base_url=scripted.gateway.base_url, timeout=30) as http:
        response = http.post(
            "/chat/completions",
            json={"model": "tgi-s/local", "messages": HI, "stream": True},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert response.status_code == 200
    assert '"Hel"' in response.text
    assert_no_leak(response.text)
    errors = [json.loads(e[6:]) for e in response.text.split("\n\n") if '"error"' in e]
    assert len(errors) == 1
    assert errors[0]["error"]["type"] == "upstream_error"
    fixed(errors[0]["error"]["message"], response.headers["x-request-id"])


@pytest.mark.parametrize("route", ["chat", "invocations", "messages"])
def test_sagemakers_model_stream_error_is_a_fixed_error_event(
    scripted: Scripted, route: str
) -> None:
    """SageMaker's ModelStreamError (its text names the account and the log stream)."""
    scripted.queue(200, sse(chunk("a"), chunk("b"), chunk("c")), "text/event-stream")
    scripted.gateway.stack.fault(ENDPOINT, "stream_error", after=1, message=LEAKY)
    path, body = {
        "chat": ("/chat/completions", {"model": "tgi-s/local", "messages": HI}),
        "invocations": ("/invocations", {"model": "raw-s/local", "input": {"messages": HI}}),
        "messages": ("/messages", {"model": "tgi-s/local", "messages": HI, "max_tokens": 8}),
    }[route]
    with httpx.Client(base_url=scripted.gateway.base_url, timeout=30) as http:
        response = http.post(
            path,
            json={**body, "stream": True},
            headers={"Authorization": f"Bearer {KEY}", "x-api-key": KEY},
        )
    assert response.status_code == 200
    assert_no_leak(response.text)
    assert f"(request {response.headers['x-request-id']})" in response.text


# --- a refusal keeps the engine's words, sanitized ------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_a_4xx_keeps_its_words_without_the_details(scripted: Scripted, stream: bool) -> None:
    text = f"`stop` is too long (see /aws/sagemaker/Endpoints/{ENDPOINT}, {ACCOUNT})\n{TRACEBACK}"
    scripted.queue(422, json.dumps({"error": f"Input validation error: {text}",
                                    "error_type": "validation"}))  # fmt: skip
    with pytest.raises(openai.BadRequestError) as info:
        scripted.sdk().chat.completions.create(model="tgi-s/local", messages=HI, stream=stream)
    assert info.value.message.endswith(
        "Input validation error: `stop` is too long (see <redacted>, <redacted>)"
    )
    assert_no_leak(info.value.response.text)

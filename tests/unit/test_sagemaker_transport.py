"""`SageMakerRuntime` over real HTTP: a scripted HTTP/1.1 server on 127.0.0.1 records
what the runtime sends and answers with raw bytes (status lines, chunked event
streams, pauses, dropped connections). Where botocore defines the behaviour (wire
request, error parsing, event-stream errors), a real botocore client is sent the same
answer by the same server and the two results are compared."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.parsers
import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from emd.local.eventstream import encode_message, exception_event, payload_part
from emd_proxy.errors import (
    InternalError,
    InvalidRequestError,
    ProxyError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from emd_proxy.sagemaker_client import INVOKE_STREAM, SageMakerRuntime, _EventDecoder
from emd_proxy.sagemaker_errors import map_upstream_error
from emd_proxy.settings import Settings

ENDPOINT = "emd-qwen3-8b-dev"
ACCOUNT = "123456789012"
LOG_STREAM_ARN = (
    f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{ENDPOINT}"
    ":log-stream:AllTraffic/i-0123456789abcdef0"
)

# --- the scripted server ----------------------------------------------------------------

CLOSE = "close"  # script step: drop the connection
HOLD = "hold"  # script step: say nothing more until the client hangs up
Step = bytes | float | str  # bytes are written, a float is a pause in seconds


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    connection: int


class ScriptedServer:
    """Answers the n-th request (on any connection) with the n-th script; requests
    beyond the scripts get HOLD."""

    def __init__(self, *scripts: list[Step]) -> None:
        self.scripts = list(scripts)
        self.requests: list[Seen] = []
        self.connections = 0
        self.hangups = 0  # connections the client closed
        self._closing = False
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        self._closing = True
        self._server.close()
        for writer in self._writers:
            writer.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        self._writers.append(writer)
        self._tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in lines:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Seen(method, path, headers, body, connection))
                for step in self.scripts.pop(0) if self.scripts else [HOLD]:
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    elif step == CLOSE:
                        return
                    elif step == HOLD:
                        await reader.read()  # returns at EOF
                        raise ConnectionResetError
                    else:
                        assert isinstance(step, bytes)
                        writer.write(step)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            if not self._closing:
                self.hangups += 1
        finally:
            writer.close()


def http_response(status: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def aws_error(status: int, error_type: str, body: dict[str, Any]) -> bytes:
    return http_response(
        status,
        {
            # SageMaker appends the Coral namespace; botocore strips it.
            "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.sagemaker/",
            "Content-Type": "application/json",
            "x-amzn-RequestId": "req-1",
        },
        json.dumps(body).encode(),
    )


OK = http_response(200, {"Content-Type": "application/json"}, b'{"ok": true}')
THROTTLED = aws_error(400, "ThrottlingException", {"message": "Rate exceeded"})
INTERNAL_FAILURE = aws_error(500, "InternalFailure", {"message": "An internal error occurred"})
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/vnd.amazon.eventstream\r\n"
    b"X-Amzn-SageMaker-Content-Type: text/event-stream\r\n"
    b"x-amzn-RequestId: req-1\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def stream(*pieces: bytes | float) -> list[Step]:
    """A chunked 200 event-stream answer: each bytes piece one HTTP chunk."""
    return [STREAM_HEAD, *(chunk(p) if isinstance(p, bytes) else p for p in pieces), LAST_CHUNK]


def model_error(original_status: int, original: str) -> bytes:
    return aws_error(
        424,
        "ModelError",
        {
            "Message": f"Received client error ({original_status}) from primary with message "
            f'"{original}". See {LOG_STREAM_ARN} in account {ACCOUNT} for more information.',
            "OriginalStatusCode": original_status,
            "OriginalMessage": original,
            "LogStreamArn": LOG_STREAM_ARN,
        },
    )


# --- fixtures and helpers ---------------------------------------------------------------

Serving = Callable[..., AbstractAsyncContextManager[tuple[ScriptedServer, SageMakerRuntime]]]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> Serving:
    """`async with serving(*scripts, **settings) as (server, runtime)`: a runtime pointed
    at a scripted server (one attempt per call unless settings say otherwise)."""

    @asynccontextmanager
    async def start(
        *scripts: list[Step], **settings: Any
    ) -> AsyncIterator[tuple[ScriptedServer, SageMakerRuntime]]:
        async with ScriptedServer(*scripts) as server:
            monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
            runtime = SageMakerRuntime(
                Settings(**{"upstream_max_attempts": 1, **settings}), session=aws_session()
            )
            try:
                yield server, runtime
            finally:
                await runtime.aclose()

    return start


_LOADER = botocore.loaders.create_loader()


def aws_session() -> botocore.session.Session:
    """A new session (it reads the environment as it is now) sharing one loader, so
    botocore's JSON models are read once, not for every test."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _LOADER)
    return session


def botocore_client(url: str) -> Any:
    """A real sagemaker-runtime client, one attempt per call."""
    return aws_session().create_client(
        "sagemaker-runtime",
        endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


async def botocore_raises(call: Callable[[], object]) -> ClientError:
    """What a real botocore client raises for `call` (run off the loop the server is on)."""

    def run() -> ClientError:
        with pytest.raises(ClientError) as info:
            call()
        return info.value

    return await asyncio.to_thread(run)


def run(main: Awaitable[None]) -> None:
    """Each test's coroutine on a new loop, bounded so a regression fails, not hangs."""

    async def bounded() -> None:
        await asyncio.wait_for(main, 10)

    asyncio.run(bounded())


async def raises(call: Awaitable[object]) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        await call
    return info.value


async def read_all(runtime: SageMakerRuntime, keepalive: float | None = None) -> list[bytes | None]:
    upstream = await runtime.open_stream(ENDPOINT, b"{}")
    return [part async for part in upstream.parts(keepalive)]


async def parts_until_error(runtime: SageMakerRuntime) -> tuple[list[bytes | None], UpstreamError]:
    """The parts a stream gave before it failed, and the error it failed with."""
    upstream = await runtime.open_stream(ENDPOINT, b"{}")
    received: list[bytes | None] = []
    with pytest.raises(UpstreamError) as info:
        async for part in upstream.parts():
            received.append(part)
    return received, info.value


async def eventually(check: Callable[[], bool], within: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def assert_signed(seen: Seen, url: str) -> None:
    """The SigV4 signature verifies against the request exactly as it arrived."""
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=testing/(\d{8})/us-east-1/sagemaker/aws4_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        seen.headers["authorization"],
    )
    assert match, seen.headers["authorization"]
    date, signed_headers, signature = match.groups()
    signed = signed_headers.split(";")
    assert {"content-type", "host", "x-amz-date"} <= set(signed)
    assert seen.headers["x-amz-date"].startswith(date)
    request = AWSRequest(
        method=seen.method,
        url=url + seen.path,
        headers={name: seen.headers[name] for name in signed},
        data=seen.body,
    )
    request.context["timestamp"] = seen.headers["x-amz-date"]
    signer = SigV4Auth(Credentials("testing", "testing"), "sagemaker", "us-east-1")
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    assert signer.signature(string_to_sign, request) == signature


# --- 1. InvokeEndpoint on the wire ------------------------------------------------------


def test_invoke_sends_a_signed_request_and_returns_body_and_content_type(serving) -> None:
    answer = http_response(200, {"Content-Type": "application/x-ndjson"}, b'{"a": 1}\n')

    async def main() -> None:
        async with serving([answer]) as (server, runtime):
            result = await runtime.invoke(
                ENDPOINT,
                b'{"inputs": "h\xc3\xa9"}',
                content_type="application/json",
                accept="application/x-ndjson",
                custom_attributes="trace=1",
            )
            assert (result.body, result.content_type) == (b'{"a": 1}\n', "application/x-ndjson")
            [seen] = server.requests
            assert (seen.method, seen.path) == ("POST", f"/endpoints/{ENDPOINT}/invocations")
            assert seen.body == b'{"inputs": "h\xc3\xa9"}'
            assert seen.headers["content-type"] == "application/json"
            assert seen.headers["accept"] == "application/x-ndjson"
            assert seen.headers["x-amzn-sagemaker-custom-attributes"] == "trace=1"
            assert "accept-encoding" not in seen.headers
            assert_signed(seen, server.url)

    run(main())


def test_invoke_without_accept_sends_no_accept_header(serving) -> None:
    async def main() -> None:
        async with serving([OK]) as (server, runtime):
            await runtime.invoke(ENDPOINT, b"{}")
            assert "accept" not in server.requests[0].headers
            assert "x-amzn-sagemaker-custom-attributes" not in server.requests[0].headers

    run(main())


def test_each_call_sends_its_own_headers_and_body_when_calls_alternate(serving) -> None:
    # URL and headers are serialized once per combination; bodies and options must not
    # leak from one call into the next.
    calls = [
        ("e1", b"{}", {}),
        ("e1", b'{"b": 2}', {"custom_attributes": "route=/v1/rerank"}),
        ("e2", b"", {"accept": "application/jsonlines"}),
        ("e1", b'{"c": 3}', {}),
        ("e1", b"{}", {"content_type": "multipart/form-data; boundary=x"}),
    ]

    async def main() -> None:
        async with serving(*[[OK] for _ in calls]) as (server, runtime):
            for endpoint, body, options in calls:
                await runtime.invoke(endpoint, body, **options)
            for (endpoint, body, options), seen in zip(calls, server.requests, strict=True):
                assert seen.path == f"/endpoints/{endpoint}/invocations"
                assert seen.body == body
                headers = seen.headers
                assert headers["content-type"] == options.get("content_type", "application/json")
                assert headers.get("accept") == options.get("accept")
                assert headers.get("x-amzn-sagemaker-custom-attributes") == options.get(
                    "custom_attributes"
                )
                assert_signed(seen, server.url)

    run(main())


@pytest.mark.parametrize("bypassed", [False, True])
def test_the_environments_proxy_is_used_as_botocore_uses_it(
    monkeypatch: pytest.MonkeyPatch, bypassed: bool
) -> None:
    # HTTP_PROXY names the scripted server; the endpoint itself does not resolve.
    endpoint_url = "http://runtime.sagemaker.invalid:8080"

    async def main() -> None:
        async with ScriptedServer([OK]) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", endpoint_url)
            # Both spellings: the lowercase one wins where both are set (urllib).
            for name in ("HTTP_PROXY", "http_proxy"):
                monkeypatch.setenv(name, proxy.url)
            for name in ("NO_PROXY", "no_proxy"):
                monkeypatch.setenv(name, "runtime.sagemaker.invalid" if bypassed else "")
            runtime = SageMakerRuntime(Settings(upstream_max_attempts=1), session=aws_session())
            try:
                if bypassed:
                    error = await raises(runtime.invoke(ENDPOINT, b"{}"))
                    assert error.status == 502 and proxy.requests == []
                    return
                await runtime.invoke(ENDPOINT, b"{}")
            finally:
                await runtime.aclose()
            [seen] = proxy.requests
            assert seen.path == f"{endpoint_url}/endpoints/{ENDPOINT}/invocations"
            assert seen.headers["host"] == "runtime.sagemaker.invalid:8080"
            assert_signed(seen, "")  # the request line holds the whole URL

    run(main())


@pytest.mark.parametrize("endpoint", [ENDPOINT, "a b/c?d#e%f+g", "ünïcode~name"])
def test_the_path_is_escaped_as_botocore_escapes_it_and_still_verifies(
    serving, endpoint: str
) -> None:
    async def main() -> None:
        async with serving([OK], [OK]) as (server, runtime):
            await runtime.invoke(endpoint, b"{}")
            client = botocore_client(server.url)
            await asyncio.to_thread(client.invoke_endpoint, EndpointName=endpoint, Body=b"{}")
            ours, theirs = server.requests
            assert ours.path == theirs.path
            assert_signed(ours, server.url)

    run(main())


# --- 2. the response stream -------------------------------------------------------------

SNOW = "data: wö☃\n".encode()
CUT = SNOW.index("☃".encode()) + 1  # inside the snowman's three bytes
STREAM_PARTS = [b"data: one\n", SNOW[:CUT], SNOW[CUT:]]
STREAM_BYTES = b"".join(
    [payload_part(STREAM_PARTS[0]), payload_part(b""), *map(payload_part, STREAM_PARTS[1:])]
)


def test_open_stream_posts_to_the_stream_path_and_reads_the_content_type(serving) -> None:
    async def main() -> None:
        async with serving(stream(STREAM_BYTES)) as (server, runtime):
            upstream = await runtime.open_stream(ENDPOINT, b'{"stream": true}', accept="*/*")
            assert upstream.content_type == "text/event-stream"
            assert [p async for p in upstream.parts()] == STREAM_PARTS
            [seen] = server.requests
            assert seen.path == f"/endpoints/{ENDPOINT}/invocations-response-stream"
            # The stream operation models Accept as X-Amzn-SageMaker-Accept.
            assert (seen.body, seen.headers["x-amzn-sagemaker-accept"]) == (
                b'{"stream": true}',
                "*/*",
            )
            assert "accept" not in seen.headers
            assert_signed(seen, server.url)

    run(main())


def test_parts_come_out_whole_and_in_order_wherever_the_chunks_cut(serving) -> None:
    cuts = range(1, len(STREAM_BYTES))
    # The pause makes each chunk a separate read on the client side.
    scripts = [stream(STREAM_BYTES[:cut], 0.001, STREAM_BYTES[cut:]) for cut in cuts]

    async def main() -> None:
        async with serving(*scripts) as (server, runtime):
            for cut in cuts:
                assert await read_all(runtime) == STREAM_PARTS, f"cut at {cut}"
            assert server.connections == 1

    run(main())


def test_parts_split_inside_a_utf8_character_join_byte_exact(serving) -> None:
    raw = "héllo wörld ☃ 🎉 done".encode()
    pieces = [raw[i : i + 3] for i in range(0, len(raw), 3)]  # cuts ö, ☃ and 🎉
    body = b"".join(map(payload_part, pieces))

    async def main() -> None:
        async with serving(stream(body[:50], 0.001, body[50:])) as (_, runtime):
            assert await read_all(runtime) == pieces

    run(main())


def test_a_missing_content_type_header_is_octet_stream(serving) -> None:
    head = STREAM_HEAD.replace(b"X-Amzn-SageMaker-Content-Type: text/event-stream\r\n", b"")

    async def main() -> None:
        async with serving([head, chunk(payload_part(b"x")), LAST_CHUNK]) as (_, runtime):
            upstream = await runtime.open_stream(ENDPOINT, b"{}")
            assert upstream.content_type == "application/octet-stream"
            assert [p async for p in upstream.parts()] == [b"x"]

    run(main())


def test_parts_with_many_distinct_header_blocks_decode_as_botocore_decodes_them(serving) -> None:
    # More distinct header blocks than the runtime keeps parsed per stream.
    payloads = [b"p%d" % i for i in range(40)]
    body = b"".join(
        encode_message(
            {
                ":event-type": "PayloadPart",
                ":message-type": "event",
                ":content-type": f"application/x-{i % 20}",
            },
            payload,
        )
        for i, payload in enumerate(payloads)
    )
    events, raised = botocore_events(body)
    assert raised is None and [e["PayloadPart"]["Bytes"] for e in events] == payloads

    async def main() -> None:
        async with serving(stream(body[:1000], 0.001, body[1000:])) as (_, runtime):
            assert await read_all(runtime) == payloads

    run(main())


# --- 3. exception events mid-stream -----------------------------------------------------

STREAM_ERRORS = {
    "ModelStreamError": exception_event(
        "ModelStreamError",
        f"Model container failed; see {LOG_STREAM_ARN} (account {ACCOUNT})",
        "ModelStreamError",
    ),
    "InternalStreamFailure": exception_event("InternalStreamFailure", "internal failure"),
}


@pytest.mark.parametrize("kind", STREAM_ERRORS)
def test_an_exception_event_ends_the_stream_as_botocore_does(serving, kind: str) -> None:
    body = payload_part(b"one") + payload_part(b"two") + STREAM_ERRORS[kind] + payload_part(b"3")

    async def main() -> None:
        async with serving(stream(body), stream(body)) as (server, runtime):
            received, error = await parts_until_error(runtime)
            assert received == [b"one", b"two"]
            assert (error.status, error.body()["error"]["type"]) == (502, "upstream_error")
            assert ACCOUNT not in error.message and "arn:" not in error.message

            client = botocore_client(server.url)

            def botocore_reads() -> None:
                answer = client.invoke_endpoint_with_response_stream(
                    EndpointName=ENDPOINT, Body=b"{}"
                )
                list(answer["Body"])

            theirs = await botocore_raises(botocore_reads)
            assert isinstance(theirs, EventStreamError)
            ours = error.__cause__
            assert isinstance(ours, EventStreamError)
            assert ours.response == theirs.response
            assert str(ours) == str(theirs)
            assert error.message == map_upstream_error(theirs, ENDPOINT).message

    run(main())


def botocore_events(data: bytes) -> tuple[list[dict[str, Any]], Exception | None]:
    """botocore's own EventStream over `data`: the events, then what it raised."""
    model = aws_session().get_service_model("sagemaker-runtime")
    output = model.operation_model(INVOKE_STREAM).output_shape
    parsed = botocore.parsers.create_parser(model.protocol).parse(
        {
            "status_code": 200,
            "headers": {"Content-Type": "application/vnd.amazon.eventstream"},
            "body": _Raw(data),
            "context": {"operation_name": INVOKE_STREAM},
        },
        output,
    )
    events: list[dict[str, Any]] = []
    try:
        events.extend(parsed["Body"])
    except Exception as exc:
        return events, exc
    return events, None


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> Iterator[bytes]:
        yield self.data

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "message",
    [
        payload_part(b"bytes"),
        payload_part(b""),
        *STREAM_ERRORS.values(),
        exception_event("ModelStreamError", "no code"),
        encode_message(
            {":event-type": "SomethingNew", ":message-type": "event"}, b'{"Field": "x"}'
        ),
        encode_message(
            {":message-type": "error", ":error-code": "Oops", ":error-message": "broken"}, b""
        ),
    ],
)
def test_the_event_decoder_agrees_with_botocores_event_stream(message: bytes) -> None:
    model = aws_session().get_service_model("sagemaker-runtime")
    decoder = _EventDecoder(model.operation_model(INVOKE_STREAM))
    buffer = EventStreamBuffer()
    buffer.add_data(message)
    [decoded] = buffer
    events, raised = botocore_events(message)
    if raised is not None:
        with pytest.raises(type(raised)) as info:
            decoder.payload(decoded)
        assert info.value.response == raised.response  # type: ignore[attr-defined]
    else:  # botocore yields nothing for an event type it does not know
        expected = events[0]["PayloadPart"]["Bytes"] if events else None
        assert decoder.payload(decoded) == expected


# --- 4. error answers: the same as botocore's, mapped -----------------------------------

ERROR_ANSWERS = {
    "model-400": model_error(400, '{"error": {"message": "context too long"}}'),
    "model-500": model_error(500, "CUDA out of memory"),
    "throttled": THROTTLED,
    "not-found": aws_error(
        400,
        "ValidationError",
        {"message": f"Endpoint {ENDPOINT} of account {ACCOUNT} not found."},
    ),
    "validation": aws_error(400, "ValidationError", {"message": "1 validation error detected"}),
    "not-ready": aws_error(429, "ModelNotReadyException", {"message": "Model not ready"}),
    "internal": INTERNAL_FAILURE,
    "html-502": http_response(502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>"),
}


@pytest.mark.parametrize("answer", ERROR_ANSWERS)
@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_an_error_answer_maps_as_botocores_exception_maps(
    serving, answer: str, streaming: bool
) -> None:
    async def main() -> None:
        raw = ERROR_ANSWERS[answer]
        async with serving([raw], [raw]) as (server, runtime):
            client = botocore_client(server.url)
            if streaming:
                ours = await raises(runtime.open_stream(ENDPOINT, b"{}"))
                theirs = await botocore_raises(
                    lambda: client.invoke_endpoint_with_response_stream(
                        EndpointName=ENDPOINT, Body=b"{}"
                    )
                )
            else:
                ours = await raises(runtime.invoke(ENDPOINT, b"{}"))
                theirs = await botocore_raises(
                    lambda: client.invoke_endpoint(EndpointName=ENDPOINT, Body=b"{}")
                )
            assert len(server.requests) == 2
            expected = map_upstream_error(theirs, ENDPOINT)
            assert type(ours) is type(expected)
            assert (ours.status, ours.message, ours.code) == (
                expected.status,
                expected.message,
                expected.code,
            )
            assert ours.headers() == expected.headers()
            cause = ours.__cause__
            assert isinstance(cause, ClientError)
            assert type(cause).__name__ == type(theirs).__name__
            metadata = ("ResponseMetadata",)
            assert {k: v for k, v in cause.response.items() if k not in metadata} == {
                k: v for k, v in theirs.response.items() if k not in metadata
            }
            assert (
                cause.response["ResponseMetadata"]["HTTPStatusCode"]
                == theirs.response["ResponseMetadata"]["HTTPStatusCode"]
            )

    run(main())


def test_a_redirect_is_an_error_answer_as_botocore_does_not_follow_it(serving) -> None:
    redirect = http_response(307, {"Location": "/elsewhere"})

    async def main() -> None:
        async with serving([redirect], [OK]) as (server, runtime):
            ours = await raises(runtime.invoke(ENDPOINT, b"{}"))
            assert [seen.path for seen in server.requests] == [f"/endpoints/{ENDPOINT}/invocations"]
            server.scripts = [[redirect]]
            client = botocore_client(server.url)
            theirs = await botocore_raises(
                lambda: client.invoke_endpoint(EndpointName=ENDPOINT, Body=b"{}")
            )
            expected = map_upstream_error(theirs, ENDPOINT)
            assert (type(ours), ours.message) == (type(expected), expected.message)

    run(main())


# --- 5. retries: botocore's standard mode -----------------------------------------------


def test_a_throttled_call_is_retried_once_when_two_attempts_are_allowed(serving) -> None:
    async def main() -> None:
        async with serving([THROTTLED], [OK], upstream_max_attempts=2) as (server, runtime):
            assert (await runtime.invoke(ENDPOINT, b"{}")).body == b'{"ok": true}'
            assert len(server.requests) == 2

    run(main())


def test_a_throttled_call_with_one_attempt_is_rate_limited(serving) -> None:
    async def main() -> None:
        async with serving([THROTTLED], [OK]) as (server, runtime):
            error = await raises(runtime.invoke(ENDPOINT, b"{}"))
            assert isinstance(error, RateLimitError)
            assert error.headers()["Retry-After"].isdigit()
            assert len(server.requests) == 1

    run(main())


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_a_model_error_is_never_retried(serving, streaming: bool) -> None:
    async def main() -> None:
        scripts = ([model_error(400, "bad input")], [OK], [OK])
        async with serving(*scripts, upstream_max_attempts=3) as (server, runtime):
            call = runtime.open_stream if streaming else runtime.invoke
            assert isinstance(await raises(call(ENDPOINT, b"{}")), InvalidRequestError)
            assert len(server.requests) == 1

    run(main())


@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
def test_an_internal_failure_is_retried(serving, streaming: bool) -> None:
    async def main() -> None:
        second = stream(payload_part(b"ok")) if streaming else [OK]
        async with serving([INTERNAL_FAILURE], second, upstream_max_attempts=2) as (
            server,
            runtime,
        ):
            if streaming:
                assert await read_all(runtime) == [b"ok"]
            else:
                assert (await runtime.invoke(ENDPOINT, b"{}")).body == b'{"ok": true}'
            assert len(server.requests) == 2

    run(main())


# --- 6. transport failures --------------------------------------------------------------


def test_nothing_listening_is_502_could_not_be_reached(monkeypatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{port}")

    async def main() -> None:
        runtime = SageMakerRuntime(Settings(upstream_max_attempts=1))  # the default session
        try:
            error = await raises(runtime.invoke(ENDPOINT, b"{}"))
        finally:
            await runtime.aclose()
        assert type(error) is UpstreamError
        assert error.status == 502
        assert "could not be reached" in error.message

    run(main())


def test_an_invoke_that_gets_no_answer_in_time_is_504(serving) -> None:
    async def main() -> None:
        async with serving([HOLD], upstream_timeout_seconds=0.3) as (server, runtime):
            error = await raises(runtime.invoke(ENDPOINT, b"{}"))
            assert type(error) is UpstreamTimeoutError
            assert error.status == 504
            assert len(server.requests) == 1

    run(main())


def test_a_stream_silent_longer_than_the_timeout_is_504_despite_keepalives(serving) -> None:
    script = [STREAM_HEAD, chunk(payload_part(b"first")), HOLD]

    async def main() -> None:
        async with serving(script, upstream_timeout_seconds=0.3) as (server, runtime):
            upstream = await runtime.open_stream(ENDPOINT, b"{}")
            received: list[bytes | None] = []
            with pytest.raises(UpstreamTimeoutError) as info:
                async for part in upstream.parts(keepalive_seconds=0.05):
                    received.append(part)
                    assert len(received) < 50, "keep-alives hide the read timeout"
            assert info.value.status == 504
            assert received[0] == b"first"
            assert None in received
            await eventually(lambda: server.hangups == 1)

    run(main())


@pytest.mark.parametrize("where", ["mid-chunk", "between-chunks"])
def test_a_connection_dropped_mid_stream_is_502_and_not_retried(serving, where: str) -> None:
    second = payload_part(b"second")
    cut = [b"%x\r\n" % len(second), second[:10]] if where == "mid-chunk" else [chunk(second)]
    script = [STREAM_HEAD, chunk(payload_part(b"first")), *cut, CLOSE]

    async def main() -> None:
        async with serving(script, [OK], upstream_max_attempts=2) as (server, runtime):
            received, error = await parts_until_error(runtime)
            assert type(error) is UpstreamError and error.status == 502
            # What had arrived may be dropped with the connection, never reordered.
            assert received in ([b"first"], [b"first", b"second"])
            assert len(server.requests) == 1

    run(main())


def test_a_corrupted_event_message_is_502_after_the_good_parts(serving) -> None:
    bad = bytearray(payload_part(b"second"))
    bad[-6] ^= 0xFF  # inside the payload: botocore's checksum fails

    async def main() -> None:
        async with serving(stream(payload_part(b"first") + bad)) as (_, runtime):
            received, error = await parts_until_error(runtime)
            assert received == [b"first"]
            assert type(error) is UpstreamError and error.status == 502

    run(main())


@pytest.mark.parametrize("keep", [1, 11, -1])  # in the prelude, the headers, the CRC
def test_a_stream_that_ends_cleanly_inside_a_message_is_502(serving, keep: int) -> None:
    # The HTTP answer is complete; the event stream in it is not. botocore would end
    # quietly and the client would take a shortened answer for a whole one.
    whole = payload_part(b"second")

    async def main() -> None:
        async with serving(stream(payload_part(b"first") + whole[:keep])) as (_, runtime):
            received, error = await parts_until_error(runtime)
            assert received == [b"first"]
            assert type(error) is UpstreamError and error.status == 502
            assert "interrupted" in error.message

    run(main())


def test_an_invoke_answer_cut_mid_body_is_502(serving) -> None:
    cut = http_response(200, {"Content-Type": "application/json"}, b'{"long": "answer"}')[:-5]

    async def main() -> None:
        async with serving([cut, CLOSE]) as (_, runtime):
            error = await raises(runtime.invoke(ENDPOINT, b"{}"))
            assert type(error) is UpstreamError and error.status == 502

    run(main())


# --- 7. keep-alives ---------------------------------------------------------------------


def test_silence_between_parts_yields_keepalives_and_loses_no_bytes(serving) -> None:
    # The second part is cut across two chunks with the pause between them.
    second = payload_part(b"two")
    script = stream(payload_part(b"one") + second[:7], 0.3, second[7:])

    async def main() -> None:
        async with serving(script) as (_, runtime):
            received = await read_all(runtime, keepalive=0.05)
            assert received[0] == b"one" and received[-1] == b"two"
            assert None in received[1:-1]
            assert [p for p in received if p is not None] == [b"one", b"two"]

    run(main())


# --- 8. leaving a stream, reusing a connection ------------------------------------------


@pytest.mark.parametrize("how", ["aclose-parts", "close-stream", "cancel-reader"])
def test_leaving_a_stream_early_closes_its_connection_at_once(serving, how: str) -> None:
    script = [STREAM_HEAD, chunk(payload_part(b"first")), HOLD]

    async def main() -> None:
        async with serving(script) as (server, runtime):
            upstream = await runtime.open_stream(ENDPOINT, b"{}")
            parts = upstream.parts(keepalive_seconds=1.0)
            if how == "close-stream":
                upstream.close()
            else:
                assert await anext(parts) == b"first"
            if how == "aclose-parts":
                await parts.aclose()
            elif how == "cancel-reader":  # the client went away while waiting for more
                reader = asyncio.create_task(anext(parts))  # type: ignore[arg-type]
                await asyncio.sleep(0.01)
                assert not reader.done()
                reader.cancel()
            await eventually(lambda: server.hangups == 1)

    run(main())


def test_a_fully_read_stream_leaves_its_connection_for_the_next_call(serving) -> None:
    async def main() -> None:
        async with serving(stream(payload_part(b"a")), [OK], stream(payload_part(b"b"))) as (
            server,
            runtime,
        ):
            assert await read_all(runtime) == [b"a"]
            await runtime.invoke(ENDPOINT, b"{}")
            assert await read_all(runtime) == [b"b"]
            assert len(server.requests) == 3
            assert server.connections == 1

    run(main())


def test_an_error_answer_leaves_its_connection_for_the_next_call(serving) -> None:
    async def main() -> None:
        async with serving([model_error(400, "bad")], [OK]) as (server, runtime):
            await raises(runtime.invoke(ENDPOINT, b"{}"))
            await runtime.invoke(ENDPOINT, b"{}")
            assert server.connections == 1

    run(main())


# --- 9. no credentials ------------------------------------------------------------------


def test_no_credentials_is_500_and_nothing_is_sent(serving, monkeypatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    for name in (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTO_CONFIG", "/nonexistent")

    async def main() -> None:
        async with serving([OK], [OK]) as (server, runtime):
            for call in (runtime.invoke, runtime.open_stream):
                error = await raises(call(ENDPOINT, b"{}"))
                assert type(error) is InternalError and error.status == 500
            assert server.requests == []
            assert server.connections == 0

    run(main())


def test_tls_trusts_the_system_store_unless_a_ca_bundle_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Over HTTPS the client takes aiohttp's verified context (built when aiohttp is
    imported; no second CA load on a cold start), or AWS_CA_BUNDLE as botocore does."""
    import ssl

    import certifi

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    runtime = SageMakerRuntime(Settings(), session=aws_session())
    assert runtime._ssl_context() is True
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes())
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    runtime = SageMakerRuntime(Settings(), session=aws_session())
    assert isinstance(runtime._ssl_context(), ssl.SSLContext)

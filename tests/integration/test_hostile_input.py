"""Hostile input against the running gateway: malformed and oversized bodies, odd
numbers, header tricks, path traversal, multipart bombs. Every case gets a clear 4xx in
OpenAI's error shape (or, where the request is fine, a normal answer), never a 5xx;
nothing private leaks; and afterwards the server still serves (`assert_healthy`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from emd.local.gateway import LocalGateway

from .conftest import E5, ECHO, KEY, RAW, WHISPER
from .reliability import (
    assert_healthy,
    assert_no_leak,
    assert_openai_error,
    raw_exchange,
    status_of,
)

JSON = {"Content-Type": "application/json"}
HI = [{"role": "user", "content": "hi"}]
# The fixture's body limit is 1 MiB (conftest: max_body_bytes).
LIMIT = 1024 * 1024


@pytest.fixture(autouse=True)
def _still_serving(gateway: LocalGateway) -> Iterator[None]:
    yield
    assert_healthy(gateway)


def chat(extra: str = "", messages: str = '[{"role": "user", "content": "hi"}]') -> bytes:
    """A chat body as raw JSON text, with `extra` spliced in as more members."""
    return f'{{"model": "{ECHO}", "messages": {messages}{extra}}}'.encode()


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


@dataclass(frozen=True)
class Case:
    """One hostile request through httpx, and what must come back."""

    id: str
    path: str
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    json: Any = None
    files: Any = None
    data: Any = None
    # Statuses that are right; any 4xx when empty. 200 means the request is fine.
    expect: tuple[int, ...] = ()
    param: str | None = "unchecked"  # the error's `param`, when it must name a field


# A file part that is itself multipart, twice over.
NESTED_MULTIPART = b"".join(
    [
        b"--outer\r\n",
        b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n',
        b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n",
        b"--inner\r\nContent-Type: multipart/mixed; boundary=deeper\r\n\r\n",
        b"--deeper\r\n\r\nx\r\n--deeper--\r\n--inner--\r\n",
        b'\r\n--outer\r\nContent-Disposition: form-data; name="model"\r\n\r\n',
        WHISPER.encode(),
        b"\r\n--outer--\r\n",
    ]
)


def _many_parts_form(parts: int) -> bytes:
    body = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(parts)
    )
    return body + b"--b--\r\n"


CASES = [
    # --- not JSON, or not the JSON we take -------------------------------------------
    Case(
        "truncated-json",
        "/chat/completions",
        b'{"model": "echo/local", "messages": [',
        expect=(400,),
    ),
    Case("json-array", "/chat/completions", b"[1, 2, 3]", expect=(400,)),
    Case("json-string", "/chat/completions", b'"hello"', expect=(400,)),
    Case("json-null", "/chat/completions", b"null", expect=(400,)),
    Case("empty-body", "/chat/completions", b"", expect=(400,)),
    Case("trailing-garbage", "/chat/completions", chat() + b"garbage", expect=(400,)),
    Case("two-documents", "/chat/completions", chat() + chat(), expect=(400,)),
    Case("single-quotes", "/chat/completions", b"{'model': 'echo/local'}", expect=(400,)),
    Case("comment", "/chat/completions", b'{"model": "echo/local" /* hi */}', expect=(400,)),
    Case("duplicate-keys", "/chat/completions", b'{"model": "x", ' + chat()[1:], expect=(200,)),
    # --- content types ---------------------------------------------------------------
    Case("text-plain", "/chat/completions", chat(), {"Content-Type": "text/plain"}, expect=(400,)),
    Case(
        "form-urlencoded",
        "/chat/completions",
        b"model=echo%2Flocal&messages=hi",
        {"Content-Type": "application/x-www-form-urlencoded"},
        expect=(400,),
    ),
    Case(
        "xml",
        "/chat/completions",
        b"<model>echo/local</model>",
        {"Content-Type": "application/xml"},
        expect=(400,),
    ),
    Case(
        "multipart-to-chat",
        "/chat/completions",
        _many_parts_form(3),
        {"Content-Type": "multipart/form-data; boundary=b"},
        expect=(400,),
    ),
    Case("no-content-type", "/chat/completions", chat(), {}, expect=(400,)),
    Case(
        "garbage-content-type",
        "/chat/completions",
        chat(),
        {"Content-Type": ";;;= /json"},
        expect=(400,),
    ),
    Case("json-to-audio", "/audio/transcriptions", chat(), expect=(400,)),
    # --- encodings -------------------------------------------------------------------
    Case(
        "invalid-utf8-in-string",
        "/chat/completions",
        chat(messages='[{"role": "user", "content": "hXi"}]').replace(b"X", b"\xff\xfe"),
        expect=(400,),
    ),
    Case("invalid-utf8-body", "/chat/completions", b"\xff\xfe\x00\x00garbage", expect=(400,)),
    # JSON must be UTF-8 (RFC 8259); Python's parser also reads UTF-16 with a BOM.
    # Refusing or reading it are both fine; failing on it is not.
    Case("utf16-body", "/chat/completions", chat().decode().encode("utf-16"), expect=(200, 400)),
    Case(
        "overlong-utf8",
        "/chat/completions",
        chat(messages='[{"role": "user", "content": "X"}]').replace(b'"X"', b'"\xc0\xaf"'),
        expect=(400,),
    ),
    Case(
        "nul-in-string",
        "/chat/completions",
        chat(messages='[{"role": "user", "content": "a\\u0000b"}]'),
        expect=(200,),
    ),
    # A lone surrogate is valid JSON text but no Unicode string: it cannot be sent on.
    Case(
        "lone-surrogate",
        "/chat/completions",
        chat(messages='[{"role": "user", "content": "a\\ud800b"}]'),
        expect=(400,),
    ),
    Case(
        "lone-surrogate-raw-input",
        "/invocations",
        json.dumps({"model": RAW, "input": {"messages": HI, "x": "\ud800"}}).encode(),
        expect=(400,),
    ),
    # --- deep nesting ----------------------------------------------------------------
    Case("nested-100k-arrays", "/chat/completions", nested(100_000, "").encode(), expect=(400,)),
    Case(
        "nested-100k-objects",
        "/chat/completions",
        ('{"a": ' * 100_000 + "1" + "}" * 100_000).encode(),
        expect=(400,),
    ),
    Case(
        "nested-10k-in-content",
        "/chat/completions",
        chat(messages=f'[{{"role": "user", "content": {nested(10_000)}}}]'),
        expect=(400,),
    ),
    # Deep enough to parse, too deep to serialise again for the container.
    Case(
        "nested-600-in-unknown-field",
        "/chat/completions",
        chat(f', "extra": {nested(600)}'),
        expect=(400,),
    ),
    Case(
        "nested-600-in-tools",
        "/chat/completions",
        chat(f', "tools": [{{"type": "function", "function": {{"parameters": {nested(600)}}}}}]'),
        expect=(400,),
    ),
    Case(
        "nested-600-raw-input",
        "/invocations",
        f'{{"model": "{RAW}", "input": {nested(600)}}}'.encode(),
        expect=(400,),
    ),
    Case(
        "nested-600-embeddings-input",
        "/embeddings",
        f'{{"model": "{E5}", "input": {nested(600)}}}'.encode(),
        expect=(400,),
    ),
    # --- sizes -----------------------------------------------------------------------
    Case(
        "huge-string-under-limit",
        "/chat/completions",
        json={
            "model": ECHO,
            "messages": [{"role": "user", "content": "x" * 900_000}],
            "max_tokens": 1,
        },
        expect=(200,),
    ),
    Case(
        "twenty-thousand-messages",
        "/chat/completions",
        json={
            "model": ECHO,
            "messages": [{"role": "user", "content": "x"}] * 20_000,
            "max_tokens": 1,
        },
        # 20,000 prompt tokens: over the echo model's 8192-token context, refused as
        # vLLM refuses it (400 context_length_exceeded), not a crash.
        expect=(400,),
    ),
    Case(
        "huge-model-id",
        "/chat/completions",
        json={"model": "m" * 100_000, "messages": HI},
        expect=(400,),
        param="model",
    ),
    Case(
        "body-over-limit",
        "/chat/completions",
        chat(messages=json.dumps([{"role": "user", "content": "x" * (LIMIT + 10)}])),
        expect=(413,),
    ),
    Case(
        "huge-number-literal",
        "/chat/completions",
        chat(', "seed": ' + "9" * 5000),
        expect=(200, 400),
    ),
    Case(
        "2049-embeddings-inputs",
        "/embeddings",
        json={"model": E5, "input": ["x"] * 2049},
        expect=(400,),
        param="input",
    ),
    Case(
        "1001-rerank-documents",
        "/rerank",
        json={"model": E5, "query": "q", "documents": ["d"] * 1001},
        expect=(400,),
        param="documents",
    ),
    # --- numbers ---------------------------------------------------------------------
    Case(
        "huge-max-tokens",
        "/chat/completions",
        json={"model": ECHO, "messages": HI, "max_tokens": 10**30},
        expect=(200, 400),
    ),
    Case(
        "max-tokens-2**63",
        "/chat/completions",
        json={"model": ECHO, "messages": HI, "max_completion_tokens": 2**63},
        expect=(200, 400),
    ),
    Case(
        "negative-max-tokens",
        "/chat/completions",
        json={"model": ECHO, "messages": HI, "max_tokens": -1},
        expect=(400,),
        param="max_tokens",
    ),
    Case(
        "zero-max-tokens",
        "/chat/completions",
        json={"model": ECHO, "messages": HI, "max_tokens": 0},
        expect=(400,),
        param="max_tokens",
    ),
    Case(
        "fractional-max-tokens",
        "/chat/completions",
        json={"model": ECHO, "messages": HI, "max_tokens": 1.5},
        expect=(400,),
        param="max_tokens",
    ),
    Case(
        "negative-n",
        "/chat/completions",
        json={"model": ECHO, "messages": HI, "n": -3},
        expect=(400,),
        param="n",
    ),
    Case(
        "negative-temperature",
        "/chat/completions",
        json={"model": ECHO, "messages": HI, "temperature": -0.5},
        expect=(400,),
        param="temperature",
    ),
    Case(
        "negative-top-logprobs",
        "/chat/completions",
        json={"model": ECHO, "messages": HI, "top_logprobs": -1},
        expect=(400,),
        param="top_logprobs",
    ),
    # NaN and Infinity are not JSON: the body does not parse (param null).
    Case(
        "nan-temperature",
        "/chat/completions",
        chat(', "temperature": NaN'),
        expect=(400,),
    ),
    Case(
        "infinity-top-p",
        "/chat/completions",
        chat(', "top_p": Infinity'),
        expect=(400,),
    ),
    Case(
        "minus-infinity-penalty",
        "/chat/completions",
        chat(', "presence_penalty": -Infinity'),
        expect=(400,),
    ),
    Case(
        "overflowing-float",
        "/chat/completions",
        chat(', "frequency_penalty": 1e400'),
        expect=(400,),
        param="frequency_penalty",
    ),
    Case(
        "nan-logit-bias",
        "/chat/completions",
        chat(', "logit_bias": {"42": NaN}'),
        expect=(400,),
    ),
    # NaN is not JSON: passed-through fields must not carry it on to the container.
    Case("nan-in-passed-through-field", "/chat/completions", chat(', "top_k": NaN'), expect=(400,)),
    Case(
        "nan-in-raw-input",
        "/invocations",
        f'{{"model": "{RAW}", "input": {{"messages": {json.dumps(HI)}, "top_p": NaN}}}}'.encode(),
        expect=(400,),
    ),
    Case(
        "negative-dimensions",
        "/embeddings",
        json={"model": E5, "input": "x", "dimensions": -5},
        expect=(400,),
        param="dimensions",
    ),
    Case(
        "negative-top-n",
        "/rerank",
        json={"model": E5, "query": "q", "documents": ["d"], "top_n": -1},
        expect=(400,),
        param="top_n",
    ),
    # --- unknown fields --------------------------------------------------------------
    Case(
        "unknown-fields",
        "/chat/completions",
        json={
            "model": ECHO,
            "messages": [{"role": "user", "content": "hi", "zzz": 1}],
            "zzz": {"a": [1, 2]},
            "__proto__": {"admin": True},
            "constructor": None,
        },
        expect=(200,),
    ),
    Case(
        "unknown-fields-embeddings",
        "/embeddings",
        json={"model": "no-such/model", "input": "x", "zzz": [1]},
        expect=(404,),
    ),
    # --- model ids: traversal and injection in bodies --------------------------------
    Case(
        "model-traversal",
        "/chat/completions",
        json={"model": "../../etc/passwd", "messages": HI},
        expect=(404,),
        param="model",
    ),
    Case(
        "model-encoded-traversal",
        "/chat/completions",
        json={"model": "..%2F..%2Fetc%2Fpasswd", "messages": HI},
        expect=(404,),
        param="model",
    ),
    Case(
        "model-traversal-after-id",
        "/chat/completions",
        json={"model": f"{ECHO}/../../echo/local", "messages": HI},
        expect=(404,),
        param="model",
    ),
    Case(
        "model-with-crlf",
        "/chat/completions",
        json={"model": "echo/local\r\nX-Injected: 1", "messages": HI},
        expect=(404,),
        param="model",
    ),
    Case(
        "model-with-nul",
        "/chat/completions",
        json={"model": "echo/local\u0000", "messages": HI},
        expect=(404,),
        param="model",
    ),
    Case(
        "model-wrong-type",
        "/chat/completions",
        json={"model": ["echo/local"], "messages": HI},
        expect=(400,),
        param="model",
    ),
    Case(
        "raw-model-traversal",
        "/invocations",
        json={"model": "../" * 50, "input": {}},
        expect=(404,),
        param="model",
    ),
    # --- raw invocations: values that become SageMaker request headers ---------------
    Case(
        "custom-attributes-crlf",
        "/invocations",
        json={"model": RAW, "input": {"messages": HI}, "custom_attributes": "a=1\r\nX-Injected: 1"},
        expect=(400,),
    ),
    Case(
        "custom-attributes-non-ascii",
        "/invocations",
        json={"model": RAW, "input": {"messages": HI}, "custom_attributes": "caf\u00e9"},
        expect=(400,),
    ),
    Case(
        "content-type-crlf",
        "/invocations",
        json={
            "model": RAW,
            "input": {"messages": HI},
            "content_type": "application/json\r\nX-Injected: 1",
        },
        expect=(400,),
    ),
    Case(
        "accept-non-ascii",
        "/invocations",
        json={"model": RAW, "input": {"messages": HI}, "accept": "\u00fc"},
        expect=(400,),
    ),
    # --- multipart bombs on audio ----------------------------------------------------
    Case(
        "audio-5000-fields",
        "/audio/transcriptions",
        _many_parts_form(5000),
        {"Content-Type": "multipart/form-data; boundary=b"},
        expect=(400,),
    ),
    Case(
        "audio-500-files",
        "/audio/transcriptions",
        files=[("file", ("a.wav", b"RIFF", "audio/wav"))] * 500,
        data={"model": WHISPER},
        headers={},
        expect=(400,),
    ),
    Case(
        "audio-huge-field",
        "/audio/transcriptions",
        files={"file": ("a.wav", b"RIFF", "audio/wav")},
        data={"model": WHISPER, "prompt": "x" * (LIMIT + 10)},
        headers={},
        expect=(413,),
    ),
    Case(
        "audio-field-under-limit",
        "/audio/transcriptions",
        files={"file": ("a.wav", b"RIFF", "audio/wav")},
        data={"model": WHISPER, "prompt": "p" * 900_000},
        headers={},
        expect=(400,),
    ),
    Case(
        "audio-nested-multipart",
        "/audio/transcriptions",
        NESTED_MULTIPART,
        {"Content-Type": "multipart/form-data; boundary=outer"},
        expect=(400,),
    ),
    Case(
        "audio-no-boundary",
        "/audio/transcriptions",
        b"--b\r\n\r\nx\r\n--b--\r\n",
        {"Content-Type": "multipart/form-data"},
        expect=(400,),
    ),
    Case(
        "audio-unterminated",
        "/audio/transcriptions",
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        + b"x" * 10_000,
        {"Content-Type": "multipart/form-data; boundary=b"},
        expect=(400,),
    ),
    Case(
        "audio-100k-empty-parts",
        "/audio/transcriptions",
        b"--b\r\n\r\n\r\n" * 100_000 + b"--b--\r\n",
        {"Content-Type": "multipart/form-data; boundary=b"},
        expect=(400,),
    ),
    Case(
        "audio-part-with-20k-headers",
        "/audio/transcriptions",
        b"--b\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(20_000))
        + b'Content-Disposition: form-data; name="model"\r\n\r\nx\r\n--b--\r\n',
        {"Content-Type": "multipart/form-data; boundary=b"},
        expect=(400,),
    ),
    Case(
        "audio-100k-filename",
        "/audio/transcriptions",
        files={"file": ("a" * 100_000 + ".wav", b"RIFF", "audio/wav")},
        data={"model": WHISPER},
        headers={},
        expect=(400,),
    ),
    Case(
        "audio-garbage-audio",
        "/audio/transcriptions",
        files={"file": ("a.wav", bytes(range(256)) * 20, "audio/wav")},
        data={"model": WHISPER},
        headers={},
        expect=(400,),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_bodies_get_a_clear_answer(gateway: LocalGateway, case: Case) -> None:
    with httpx.Client(
        base_url=gateway.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ) as http:
        response = http.post(
            case.path,
            content=case.content,
            json=case.json,
            files=case.files,
            data=case.data,
            headers=case.headers,
        )
    if case.expect == (200,) or (200 in case.expect and response.status_code == 200):
        assert response.status_code == 200, response.text[:500]
        assert_no_leak(response.text)
        return
    error = assert_openai_error(response, *(s for s in case.expect if s != 200))
    if case.param != "unchecked":
        assert error["param"] == case.param, error


# --- model ids in the path --------------------------------------------------------
def _get(gateway: LocalGateway, target: str, *, key: bool = True) -> bytes:
    """GET with the request target exactly as given (httpx would normalise `..`)."""
    auth = f"Authorization: Bearer {KEY}\r\n" if key else ""
    request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    return raw_exchange(gateway, request.encode())


def _json_body(raw: bytes) -> dict[str, Any]:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("target", "shown_as"),
    [
        ("/v1/models/../../etc/passwd", "../../etc/passwd"),
        ("/v1/models/%2e%2e/%2e%2e/etc/passwd", "../../etc/passwd"),
        ("/v1/models/..%2f..%2fetc%2fpasswd", "../../etc/passwd"),
        ("/v1/models/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "../../etc/passwd"),
        ("/v1/models/echo/local/../../..", "echo/local/../../.."),
        ("/v1/models//etc/passwd", "/etc/passwd"),
        ("/v1/models/..", ".."),
        ("/v1/models/%00", "\x00"),
        ("/v1/models/echo%5C..%5C..%5Cwindows", "echo\\..\\..\\windows"),
        ("/v1/models/%252e%252e%252f", "%2e%2e%2f"),
    ],
)
def test_path_traversal_in_model_ids_is_just_an_unknown_model(
    gateway: LocalGateway, target: str, shown_as: str
) -> None:
    raw = _get(gateway, target)
    assert status_of(raw) == 404, raw[:300]
    error = _json_body(raw)["error"]
    assert error["code"] == "model_not_found"
    assert error["message"] == f"The model `{shown_as}` does not exist."
    assert_no_leak(raw.decode("latin-1"))


def test_an_encoded_slash_in_a_model_id_finds_the_model(gateway: LocalGateway) -> None:
    raw = _get(gateway, "/v1/models/echo%2Flocal")
    assert status_of(raw) == 200, raw[:300]
    assert _json_body(raw)["id"] == ECHO


@pytest.mark.parametrize(
    "target",
    ["/v1/../health", "/v1/%2e%2e/health", "/v1%2fmodels", "/v1/./models", "/v1//models"],
)
def test_dot_segments_do_not_skip_the_key_check(gateway: LocalGateway, target: str) -> None:
    raw = _get(gateway, target, key=False)
    assert status_of(raw) in (401, 404), raw[:300]
    if status_of(raw) == 404:  # no route at all: it reveals nothing either
        assert _json_body(raw)["error"]["code"] == "not_found"
    else:
        assert _json_body(raw)["error"]["code"] == "invalid_api_key"


def test_crlf_in_a_path_does_not_reach_the_answer_headers(gateway: LocalGateway) -> None:
    raw = _get(gateway, "/v1/models/x%0D%0AX-Injected:%201%0D%0A%0D%0Aevil")
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    assert status_of(raw) == 404
    assert b"x-injected" not in head


# --- headers ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        b"X-A: a\rb",  # bare CR
        b"X-A: a\nX-Injected: 1",  # bare LF (header splitting)
        b"X-A: a\x00b",  # NUL
        b"X-A: a\r\n b",  # obsolete line folding
        b"X A: spaces in the name",
        b": no name",
    ],
    ids=["bare-cr", "bare-lf", "nul", "obs-fold", "space-in-name", "empty-name"],
)
def test_malformed_headers_are_refused_by_the_http_layer(
    gateway: LocalGateway, header: bytes
) -> None:
    """The HTTP server refuses these before the app sees them (its own plain-text 400:
    behind API Gateway they never get this far), or ignores the malformed part."""
    request = (
        b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\n"
        + header
        + b"\r\nConnection: close\r\n\r\n"
    )
    raw = raw_exchange(gateway, request)
    assert status_of(raw) in (200, 400), raw[:300]
    assert b"x-injected" not in raw.split(b"\r\n\r\n", 1)[0].lower()
    assert_no_leak(raw.decode("latin-1"))


def test_httpx_itself_refuses_to_send_crlf_in_a_header(gateway: LocalGateway) -> None:
    with pytest.raises(httpx.LocalProtocolError):
        httpx.get(
            f"{gateway.base_url}/models",
            headers={"Authorization": f"Bearer {KEY}\r\nX-Injected: 1"},
        )


@pytest.mark.parametrize(
    ("name", "value", "expect"),
    [
        ("X-Long", "a" * 64 * 1024, (200, 400, 431)),
        ("X-Long", "a" * 4 * 1024 * 1024, (200, 400, 431)),
        ("Authorization", "Bearer " + "k" * 1024 * 1024, (400, 401, 431)),
        ("Authorization", "Bearer " + KEY + " " + "k" * 100_000, (400, 401, 431)),
    ],
    ids=["64KiB-header", "4MiB-header", "1MiB-bearer", "key-plus-junk"],
)
def test_very_long_headers(
    gateway: LocalGateway, name: str, value: str, expect: tuple[int, ...]
) -> None:
    request = (
        f"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\n"
        if name != "Authorization"
        else "GET /v1/models HTTP/1.1\r\nHost: localhost\r\n"
    )
    request += f"{name}: {value}\r\nConnection: close\r\n\r\n"
    raw = raw_exchange(gateway, request.encode(), timeout=30)
    assert status_of(raw) in expect, raw[:300]
    assert_no_leak(raw.decode("latin-1"))
    if status_of(raw) == 401:
        assert _json_body(raw)["error"]["code"] == "invalid_api_key"


def test_twenty_thousand_headers(gateway: LocalGateway) -> None:
    many = "".join(f"X-H{i}: v\r\n" for i in range(20_000))
    request = (
        f"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\n"
        f"{many}Connection: close\r\n\r\n"
    )
    raw = raw_exchange(gateway, request.encode(), timeout=30)
    assert status_of(raw) in (200, 400, 431), raw[:300]


# --- 413 before the body is read --------------------------------------------------
def _post_head(path: str, *headers: str) -> bytes:
    lines = [f"POST /v1{path} HTTP/1.1", "Host: localhost", f"Authorization: Bearer {KEY}"]
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode()


@pytest.mark.parametrize("path", ["/chat/completions", "/audio/transcriptions", "/embeddings"])
def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    gateway: LocalGateway, path: str
) -> None:
    """Content-Length says 50 MiB; only a few bytes follow and the client then waits.
    The 413 arrives all the same: the server answered from the headers, without
    waiting for (or reading) the body."""
    request = _post_head(
        path, "Content-Type: application/json", f"Content-Length: {50 * 1024 * 1024}"
    )
    raw = raw_exchange(gateway, request + b'{"model": "', timeout=20)
    assert status_of(raw) == 413, raw[:300]
    error = _json_body(raw)["error"]
    assert error["code"] == "request_too_large"
    assert error["type"] == "invalid_request_error"


def test_a_chunked_body_is_refused_once_it_passes_the_limit(gateway: LocalGateway) -> None:
    """No Content-Length: the server reads up to the limit and answers 413 then, while
    the client has not even finished the body."""
    chunk = b"x" * 65536
    piece = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    request = _post_head(
        "/chat/completions", "Content-Type: application/json", "Transfer-Encoding: chunked"
    )
    # One chunk over the limit, and no terminating chunk: all that is sent gets read,
    # and the body never ends.
    body = piece * (LIMIT // len(chunk) + 1)
    raw = raw_exchange(gateway, request + body, timeout=20)
    assert status_of(raw) == 413, raw[:300]
    assert _json_body(raw)["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    "lengths",
    [["10", "99999999"], ["-1"], ["99999999999999999999999999"], ["0x10"], ["1 0"]],
    ids=["two-lengths", "negative", "huge", "hex", "space"],
)
def test_malformed_content_length_is_refused(gateway: LocalGateway, lengths: list[str]) -> None:
    headers = [f"Content-Length: {n}" for n in lengths]
    request = _post_head("/chat/completions", "Content-Type: application/json", *headers)
    raw = raw_exchange(gateway, request + b'{"model"', timeout=20)
    assert status_of(raw) in (400, 413), raw[:300]
    assert_no_leak(raw.decode("latin-1"))

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore import parsers
from botocore.awsrequest import HeadersDict
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import EventStreamError
from hypothesis import given
from hypothesis import strategies as st

from emd.local.eventstream import encode_message, exception_event, payload_part

OPERATION = "InvokeEndpointWithResponseStream"


def decode(data: bytes, chunk: int | None = None) -> list:
    buffer = EventStreamBuffer()
    messages = []
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        buffer.add_data(data[start : start + step])
        messages += list(buffer)
    return messages


class RawStream:
    """What botocore's EventStream reads: an object with `stream()` (urllib3 style)."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk = data, chunk
        self.closed = False

    def stream(self):
        for start in range(0, len(self.data), self.chunk):
            yield self.data[start : start + self.chunk]

    def close(self) -> None:
        self.closed = True


def parse_stream_response(data: bytes, chunk: int = 5) -> dict:
    """Parse a 200 InvokeEndpointWithResponseStream answer exactly as botocore does."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    output_shape = model.operation_model(OPERATION).output_shape
    parser = parsers.create_parser(model.protocol)
    return parser.parse(
        {
            "status_code": 200,
            "headers": HeadersDict(
                {
                    "Content-Type": "application/vnd.amazon.eventstream",
                    "X-Amzn-SageMaker-Content-Type": "text/event-stream",
                }
            ),
            "body": RawStream(data, chunk),
            "context": {"operation_name": OPERATION},
        },
        output_shape,
    )


def test_payload_part_decodes_with_botocore() -> None:
    [message] = decode(payload_part(b"data: hi\n\n"))
    assert message.headers == {
        ":event-type": "PayloadPart",
        ":message-type": "event",
        ":content-type": "application/octet-stream",
    }
    assert message.payload == b"data: hi\n\n"
    assert message.to_response_dict()["status_code"] == 200


def test_empty_payload_part() -> None:
    [message] = decode(payload_part(b""))
    assert message.payload == b""


def test_exception_event_decodes_with_botocore() -> None:
    [message] = decode(exception_event("ModelStreamError", "it broke", "StreamBroken"))
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "ModelStreamError"
    assert json.loads(message.payload) == {"Message": "it broke", "ErrorCode": "StreamBroken"}
    assert message.to_response_dict()["status_code"] == 400


def test_exception_event_without_error_code() -> None:
    [message] = decode(exception_event("InternalStreamFailure", "oops"))
    assert message.headers[":exception-type"] == "InternalStreamFailure"
    assert json.loads(message.payload) == {"Message": "oops"}


def test_prelude_lengths_are_right() -> None:
    data = encode_message({"a": "bc", "héader": "välue"}, b"xyz")
    [message] = decode(data)
    assert message.prelude.total_length == len(data)
    assert message.headers == {"a": "bc", "héader": "välue"}
    assert message.payload == b"xyz"


def test_a_corrupted_message_fails_botocores_checksum() -> None:
    data = bytearray(payload_part(b"hello"))
    data[-6] ^= 0xFF  # inside the payload
    with pytest.raises(ChecksumMismatch):
        decode(bytes(data))


@given(
    payloads=st.lists(st.binary(max_size=64), min_size=1, max_size=6),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_messages_cut_at_any_size_decode_to_the_same_payloads(payloads, chunk) -> None:
    data = b"".join(payload_part(p) for p in payloads)
    assert [m.payload for m in decode(data, chunk)] == payloads


def test_botocore_event_stream_yields_payload_parts_then_raises_model_stream_error() -> None:
    data = (
        payload_part(b"data: one\n")
        + payload_part("data: wö".encode()[:-1])
        + payload_part("data: wö".encode()[-1:] + b"rld\n")
        + exception_event("ModelStreamError", "the model fell over", "StreamBroken")
        + payload_part(b"never seen")
    )
    parsed = parse_stream_response(data, chunk=7)
    assert parsed["ContentType"] == "text/event-stream"
    received = []
    with pytest.raises(EventStreamError) as info:
        for event in parsed["Body"]:
            received.append(event)
    assert received == [
        {"PayloadPart": {"Bytes": b"data: one\n"}},
        {"PayloadPart": {"Bytes": "data: wö".encode()[:-1]}},
        {"PayloadPart": {"Bytes": "data: wö".encode()[-1:] + b"rld\n"}},
    ]
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert info.value.response["Error"]["Message"] == "the model fell over"


def test_botocore_event_stream_raises_internal_stream_failure() -> None:
    parsed = parse_stream_response(exception_event("InternalStreamFailure", "internal"))
    with pytest.raises(EventStreamError) as info:
        list(parsed["Body"])
    assert info.value.response["Error"]["Code"] == "InternalStreamFailure"

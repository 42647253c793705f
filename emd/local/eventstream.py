"""AWS event-stream encoding (application/vnd.amazon.eventstream), the framing of
InvokeEndpointWithResponseStream. botocore only decodes it.

Message: prelude (total length, headers length, CRC32 of both) | headers | payload |
CRC32 of everything before it. Headers here are all strings (type 7)."""

from __future__ import annotations

import json
import struct
import zlib

MEDIA_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    return _frame(_headers(headers), payload)


def _frame(raw_headers: bytes, payload: bytes) -> bytes:
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack("!I", zlib.crc32(message))


_PAYLOAD_PART_HEADERS = _headers(
    {
        ":event-type": "PayloadPart",
        ":message-type": "event",
        ":content-type": "application/octet-stream",
    }
)


def payload_part(data: bytes) -> bytes:
    """`encode_message` with the PayloadPart headers encoded once (every streamed
    part of every request carries the same three)."""
    return _frame(_PAYLOAD_PART_HEADERS, data)


def exception_event(kind: str, message: str, error_code: str | None = None) -> bytes:
    """`ModelStreamError` (with ErrorCode) or `InternalStreamFailure`."""
    body: dict[str, str] = {"Message": message}
    if error_code is not None:
        body["ErrorCode"] = error_code
    return encode_message(
        {
            ":exception-type": kind,
            ":message-type": "exception",
            ":content-type": "application/json",
        },
        json.dumps(body).encode(),
    )

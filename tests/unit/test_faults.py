from __future__ import annotations

import pytest

from emd.local.faults import KINDS, STREAM_ONLY, FaultBook


def test_kinds_cover_the_design() -> None:
    assert {
        "throttle",
        "model_error",
        "timeout",
        "not_ready",
        "stream_error",
        "stall",
        "split_http",
        "split_parts",
    } <= KINDS
    assert STREAM_ONLY <= KINDS


def test_times_are_consumed() -> None:
    book = FaultBook()
    book.add("emd-echo-local", "throttle", times=2)
    assert book.take("emd-echo-local", streaming=False).kind == "throttle"
    assert book.take("emd-echo-local", streaming=True).kind == "throttle"
    assert book.take("emd-echo-local", streaming=False) is None
    assert book.pending() == []


def test_only_the_named_endpoint_matches() -> None:
    book = FaultBook()
    book.add("emd-a", "not_ready")
    assert book.take("emd-b", streaming=False) is None
    assert book.take("emd-a", streaming=False).kind == "not_ready"


def test_wildcard_matches_every_endpoint() -> None:
    book = FaultBook()
    book.add("*", "timeout", times=2, seconds=0.5)
    first = book.take("emd-a", streaming=False)
    assert first.float_param("seconds", 60) == 0.5
    assert book.take("emd-b", streaming=True).kind == "timeout"
    assert book.take("emd-c", streaming=False) is None


def test_faults_are_taken_in_order() -> None:
    book = FaultBook()
    book.add("emd-a", "throttle")
    book.add("*", "not_ready")
    assert book.take("emd-a", streaming=False).kind == "throttle"
    assert book.take("emd-a", streaming=False).kind == "not_ready"


@pytest.mark.parametrize("kind", sorted(STREAM_ONLY))
def test_stream_only_kinds_are_skipped_by_non_streaming_calls(kind) -> None:
    book = FaultBook()
    book.add("emd-a", kind)
    book.add("emd-a", "throttle")
    assert book.take("emd-a", streaming=False).kind == "throttle"
    assert [f.kind for f in book.pending()] == [kind]  # still waiting for a stream
    assert book.take("emd-a", streaming=True).kind == kind


def test_params() -> None:
    book = FaultBook()
    fault = book.add("emd-a", "split_parts", offsets=[9, "3", 3])
    assert fault.offsets() == [3, 9]
    error = book.add("emd-a", "model_error", status="422", message="bad")
    assert error.int_param("status", 500) == 422
    assert error.params["message"] == "bad"
    assert error.int_param("missing", 7) == 7


def test_unknown_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultBook().add("emd-a", "explode")


def test_times_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FaultBook().add("emd-a", "throttle", times=0)


def test_clear() -> None:
    book = FaultBook()
    book.add("*", "throttle", times=5)
    book.clear()
    assert book.take("emd-a", streaming=False) is None

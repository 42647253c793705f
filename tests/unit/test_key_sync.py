"""`emd keys` after a write: invoking the stack's key-sync Lambda and reporting what
changed; a failed sync is a warning (the document is already saved), `emd keys sync`
fails on it. moto runs Lambda functions only in Docker, so the Lambda client is a
stand-in that records the call and answers as Lambda does."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

from emd import key_sync
from emd.errors import CliError


class FakeLambda:
    def __init__(self, payload: Any, function_error: str | None = None) -> None:
        self.payload = payload
        self.function_error = function_error
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        answer: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": io.BytesIO(json.dumps(self.payload).encode()),
        }
        if self.function_error:
            answer["FunctionError"] = self.function_error
        return answer


class FakeAws:
    def __init__(self, fake: FakeLambda) -> None:
        self.fake = fake

    def client(self, service: str) -> Any:
        assert service == "lambda"
        return self.fake


REPORT = {
    "keys": 2,
    "plans": ["emd-r10-b20-qnone"],
    "created_keys": ["EMD-ci"],
    "replaced_keys": [],
    "deleted_keys": ["EMD-old"],
    "moved_keys": [],
    "changed": True,
}


def test_sync_invokes_the_stacks_function_synchronously() -> None:
    fake = FakeLambda(REPORT)
    assert key_sync.run_sync(FakeAws(fake), "EMD-API-KeySync") == REPORT  # type: ignore[arg-type]
    (call,) = fake.calls
    assert call["FunctionName"] == "EMD-API-KeySync"
    assert call["InvocationType"] == "RequestResponse"
    assert json.loads(call["Payload"]) == {"action": "sync"}
    assert key_sync.describe(REPORT) == "added EMD-ci; removed EMD-old"


@pytest.mark.parametrize(
    ("fake", "message"),
    [
        (FakeLambda({"errorType": "AccessDenied"}, "Unhandled"), "failed (AccessDenied)"),
        (FakeLambda({"error": 'key "ci": "limits.rate" must be a number > 0'}), "refused"),
        (FakeLambda(None), "failed (no answer)"),
    ],
)
def test_failures_are_cli_errors(fake: FakeLambda, message: str) -> None:
    with pytest.raises(CliError, match=re.escape(message)):
        key_sync.run_sync(FakeAws(fake), "fn")  # type: ignore[arg-type]


def test_after_a_write_a_failed_sync_is_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    key_sync.after_write(FakeAws(FakeLambda({"errorType": "X"}, "Unhandled")), "fn")  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "the key document is saved" in err and "emd keys sync" in err
    key_sync.after_write(FakeAws(FakeLambda(REPORT)), None)  # type: ignore[arg-type]
    assert "no KeySyncFunctionName output" in capsys.readouterr().err
    key_sync.after_write(FakeAws(FakeLambda(REPORT)), "fn")  # type: ignore[arg-type]
    assert "usage plans synced: added EMD-ci; removed EMD-old" in capsys.readouterr().err

"""Where `emd keys` reads and writes key documents: the deployment's Secrets Manager
secret, or the local keys.json of `emd serve`. Both are read-modify-write with a
version check, so two admins cannot silently overwrite each other's changes.

Secrets Manager has no conditional write: we compare the version we read with the
current AWSCURRENT version right before PutSecretValue. A write that lands between
that check and ours can still be overwritten (a window of one API round trip); the
ClientRequestToken only makes our own retries idempotent. The local file is checked
and replaced under an exclusive lock, so `emd keys --local` runs never race."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .aws import Aws, aws_errors
from .errors import CliError, ConflictError
from .keys import validate

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the content check still applies.
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")
_CONFLICT = (
    "the keys were changed by someone else since they were read ({where}); nothing was "
    "written. Run the command again."
)


@dataclass(frozen=True)
class Snapshot:
    document: dict[str, Any]
    version: str | None  # None: nothing stored yet (a local file that does not exist)


class KeyDocumentStore(Protocol):
    where: str

    def read(self) -> Snapshot: ...

    def write(self, document: dict[str, Any], read: Snapshot) -> None:
        """Store `document` unless the stored version is no longer `read.version`."""


def modify(
    store: KeyDocumentStore, change: Callable[[dict[str, Any]], tuple[dict[str, Any], T]]
) -> T:
    """Read, apply `change`, write back with the version check; returns what `change`
    returned besides the new document (e.g. the new key)."""
    snapshot = store.read()
    document, result = change(snapshot.document)
    store.write(validate(document), snapshot)
    return result


class SecretKeys:
    """The deployment's secret (its ARN comes from the API stack's ApiKeySecretArn)."""

    def __init__(self, aws: Aws, secret_id: str) -> None:
        self._client = aws.client("secretsmanager")
        self.secret_id = secret_id
        self.where = f"secret {secret_id}"

    def read(self) -> Snapshot:
        with aws_errors():
            value = self._client.get_secret_value(SecretId=self.secret_id)
        return Snapshot(_parse(value.get("SecretString") or "", self.where), value["VersionId"])

    def current_version(self) -> str | None:
        """The AWSCURRENT version id, from DescribeSecret (no need to decrypt)."""
        with aws_errors():
            stages = self._client.describe_secret(SecretId=self.secret_id).get(
                "VersionIdsToStages", {}
            )
        return next((v for v, s in stages.items() if "AWSCURRENT" in s), None)

    def write(self, document: dict[str, Any], read: Snapshot) -> None:
        if self.current_version() != read.version:
            raise ConflictError(_CONFLICT.format(where=self.where))
        with aws_errors():
            self._client.put_secret_value(
                SecretId=self.secret_id,
                SecretString=json.dumps(document),
                # Becomes the new version id; botocore's own retries of this call reuse
                # it, so a retried request is not a second write.
                ClientRequestToken=str(uuid.uuid4()),
            )


class FileKeys:
    """`emd serve`'s keys.json (mode 0600), replaced atomically under a lock file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def read(self) -> Snapshot:
        raw = self._read_bytes()
        if raw is None:
            return Snapshot({}, None)
        return Snapshot(_parse(raw.decode(), self.where), _digest(raw))

    def write(self, document: dict[str, Any], read: Snapshot) -> None:
        with self._locked():
            raw = self._read_bytes()
            if (None if raw is None else _digest(raw)) != read.version:
                raise ConflictError(_CONFLICT.format(where=self.where))
            self._replace(json.dumps(document, indent=2) + "\n")

    def _read_bytes(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CliError(f"cannot read {self.path}: {exc.strerror}") from exc

    def _replace(self, text: str) -> None:
        # A reader (the running `emd serve`) sees the old file or the new one, never
        # half of one; mkstemp creates the file with mode 0600.
        fd, tmp = tempfile.mkstemp(prefix=".keys-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        document = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise CliError(f"the keys in {where} are not valid JSON: {exc}") from exc
    try:
        return validate(document)
    except CliError as exc:
        # Nothing is written back over a document we cannot read: it is fixed by hand.
        raise CliError(
            f"{exc} (in {where}; the gateway will not use these keys: fix the document "
            "there by hand)"
        ) from exc


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()

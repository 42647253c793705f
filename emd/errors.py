"""Errors the CLI reports to the user as one line (and exit code 1), never a traceback."""

from __future__ import annotations


class CliError(Exception):
    """A problem the user can act on; `str(exc)` is the whole message."""


class ConflictError(CliError):
    """Someone else changed the keys between our read and our write; nothing was written."""

"""Embedding vectors: shortening (`dimensions`) and OpenAI's base64 encoding. Pure
Python: vectors are small and numpy would double the Lambda bundle."""

from __future__ import annotations

import base64
import math
import struct

from .errors import InvalidRequestError


def shorten(vector: list[float], dimensions: int) -> list[float]:
    """Matryoshka-style: keep the first `dimensions` values and renormalise (what
    OpenAI's `dimensions` does for text-embedding-3)."""
    if dimensions > len(vector):
        raise InvalidRequestError(
            f"dimensions must be at most {len(vector)} for this model.", param="dimensions"
        )
    head = vector[:dimensions]
    norm = math.sqrt(sum(v * v for v in head))
    return [v / norm for v in head] if norm else head


def to_base64(vector: list[float]) -> str:
    """Little-endian float32, base64: what the OpenAI SDK decodes (its default)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def estimate_tokens(text: str) -> int:
    """For engines that do not report token counts (TEI on SageMaker): about four
    characters per token, as OpenAI's own rule of thumb."""
    return max(1, math.ceil(len(text) / 4))

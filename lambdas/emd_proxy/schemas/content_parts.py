"""Which chat content parts a model takes, by its registry features.

A part the model cannot read is a 400 naming it before any engine sees the request:
vLLM refuses an image for a text-only model only after loading it (or, through its
SageMaker route, as "Cannot find suitable handler"), TGI's serde refuses an unknown
part type in its own words, and a chat template may silently drop it, so the answer
ignores half the question."""

from __future__ import annotations

from ..registry import Features

# Parts every chat model reads: OpenAI's `text` and `refusal` (assistant history),
# vLLM's `input_text`/`output_text` aliases.
TEXT_PARTS = frozenset({"text", "input_text", "output_text", "refusal"})

# Media parts -> (the feature flag they need, what the model then does not accept).
# `vision` is a declared feature; `video` and `audio` are catalog flags (a vLLM
# vision-language model such as Qwen3-VL reads video; most read images only).
MEDIA_PARTS = {
    "image_url": ("vision", "images"),
    "input_image": ("vision", "images"),
    "image_embeds": ("vision", "images"),
    "video_url": ("video", "video"),
    "input_audio": ("audio", "audio"),
    "audio_url": ("audio", "audio"),
}
MEDIA_FLAGS = ("vision", "video", "audio")


def unsupported_part(part_type: str, features: Features) -> str | None:
    """Why a model with `features` cannot take a part of this type, or None.

    Part types beyond these (`file`, an engine's own) go only to a model that reads
    some media, whose engine knows its own types and answers for them."""
    if part_type in TEXT_PARTS:
        return None
    media = MEDIA_PARTS.get(part_type)
    if media is not None:
        flag, noun = media
        return None if _has(features, flag) else f"does not accept {noun}."
    if any(_has(features, flag) for flag in MEDIA_FLAGS):
        return None
    return f"takes text only; content parts of type `{part_type}` are not supported."


def _has(features: Features, flag: str) -> bool:
    # Declared flags (vision) and the catalog's extra ones (video, audio) alike.
    return getattr(features, flag, None) is True

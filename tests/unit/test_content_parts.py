"""Chat content parts beyond text reach only a model that reads them (issue 17.6): an
image, a video, audio, a file or an unknown part to a text-only model is a 400 naming
the part, before any engine call; the flags are the catalog's."""

from __future__ import annotations

from typing import Any

import pytest

from emd_proxy.engines.chat import check_features
from emd_proxy.errors import InvalidRequestError
from emd_proxy.registry import Features, RegistryEntry
from emd_proxy.schemas.chat import ChatCompletionRequest

TEXT = {"type": "text", "text": "what is this?"}
PARTS: dict[str, dict[str, Any]] = {
    "image_url": {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
    "video_url": {"type": "video_url", "video_url": {"url": "https://x/a.mp4"}},
    "input_audio": {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    "file": {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg=="}},
    "unknown": {"type": "hologram", "hologram": {}},
}


def entry(**features: bool) -> RegistryEntry:
    return RegistryEntry(
        id="m/dev",
        model="m",
        tag="dev",
        endpoint="emd-m-dev",
        engine="vllm",
        families=["chat"],
        features=Features(**features),
    )


def request(part: dict[str, Any]) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [TEXT, part]},
            ],
        }
    )


def refused(part: str, **features: bool) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        check_features(request(PARTS[part]), entry(**features))
    assert info.value.param == "messages.1.content.1"
    return info.value


@pytest.mark.parametrize("part", list(PARTS))
def test_a_text_only_model_takes_no_other_part(part: str) -> None:
    error = refused(part, tools=True)
    assert error.status == 400 and error.message.startswith("The model `m/dev` ")


def test_the_messages_say_what_the_model_does_not_take() -> None:
    assert refused("image_url").message == "The model `m/dev` does not accept images."
    assert refused("video_url").message == "The model `m/dev` does not accept video."
    assert refused("input_audio").message == "The model `m/dev` does not accept audio."
    assert refused("unknown").message == (
        "The model `m/dev` takes text only; content parts of type `hologram` are not supported."
    )


def test_a_vision_model_takes_images_and_video_only_with_the_video_flag() -> None:
    check_features(request(PARTS["image_url"]), entry(vision=True))
    refused("video_url", vision=True)
    refused("input_audio", vision=True)
    check_features(request(PARTS["video_url"]), entry(vision=True, video=True))
    check_features(request(PARTS["input_audio"]), entry(audio=True))


def test_a_media_model_gets_other_part_types_for_its_engine_to_judge() -> None:
    check_features(request(PARTS["file"]), entry(vision=True))
    check_features(request(PARTS["unknown"]), entry(audio=True))


def test_text_parts_pass_everywhere() -> None:
    for kind in ("text", "input_text", "output_text", "refusal"):
        check_features(request({"type": kind, "text": "x"}), entry())

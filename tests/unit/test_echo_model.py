"""The echo model every fake engine shares: what it says, whatever the framing."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from emd.local.containers import echo_model as model
from emd.local.models import LOCAL_MODELS

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "note": {"type": "string"},
            },
            "required": ["city", "days", "unit"],
        },
    },
}
OTHER = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}


def user(content: object) -> dict:
    return {"role": "user", "content": content}


def test_fill_gives_required_properties_simple_valid_values() -> None:
    arguments = model.fill(WEATHER["function"]["parameters"], "Paris")
    assert arguments == {"city": "Paris", "days": 0, "unit": "celsius"}


class Place(BaseModel):
    name: str
    visited: bool


class Trip(BaseModel):
    title: str
    places: list[Place]
    stop: Place | None
    when: str | None = None


def test_fill_follows_pydantic_refs_and_optionals() -> None:
    value = model.fill(Trip.model_json_schema(), "x")
    trip = Trip.model_validate(value)
    assert trip.title == "x"
    assert trip.stop == Place(name="x", visited=False)


def test_json_answer_for_each_response_format() -> None:
    assert json.loads(model.json_answer({"type": "json_object"}, "hi") or "") == {"echo": "hi"}
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "P", "schema": Place.model_json_schema()},
    }
    assert Place.model_validate_json(model.json_answer(schema, "hi") or "") == Place(
        name="hi", visited=False
    )
    tgi_style = {"type": "json", "value": Place.model_json_schema()}
    assert json.loads(model.json_answer(tgi_style, "hi") or "")["name"] == "hi"
    assert model.json_answer({"type": "text"}, "hi") is None
    assert model.json_answer(None, "hi") is None


def test_plan_calls_by_tool_choice() -> None:
    named = model.plan_calls([WEATHER, OTHER], "other", "Paris", parallel=True)
    assert [c.name for c in named] == ["other"]
    assert [c.name for c in model.plan_calls([WEATHER, OTHER], "auto", "P", parallel=True)] == [
        "get_weather",
        "other",
    ]
    single = model.plan_calls([WEATHER, OTHER], "required", "P", parallel=False)
    assert [c.name for c in single] == ["get_weather"]
    assert model.plan_calls([WEATHER], "missing", "P", parallel=True) == []


def test_prose_mentions_images_and_answers_tool_round_trips() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert model.prose([user([{"type": "text", "text": "look"}, image])]) == "look [1 image]"
    assert model.prose([user([image, image])]) == "[2 images]"
    round_trip = [
        user("weather?"),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert model.prose(round_trip) == "Tool result: sunny"
    # A tool message that answers no tool call is not a round trip.
    assert model.prose([user("hi"), {"role": "tool", "content": "x"}]) == "hi"


@given(st.text(alphabet=st.sampled_from(list('ab {}[]":,\\é1 ')), max_size=40))
def test_json_pieces_join_back(text: str) -> None:
    assert "".join(model.json_pieces(text)) == text


def test_json_pieces_cut_like_a_tokenizer() -> None:
    pieces = model.json_pieces('{"city": "Paris, FR"}')
    assert pieces == ['{"', "city", '":', ' "', "Paris", ",", " FR", '"}']


def test_logprob_candidates_put_the_token_first() -> None:
    assert model.logprob_candidates("a", 0) == []
    assert model.logprob_candidates("a", 3)[0] == ("a", 0.0)
    assert [lp for _, lp in model.logprob_candidates("a", 3)[1:]] == [model.IMPOSSIBLE] * 2


def test_cut_before_stop_reports_the_matched_stop() -> None:
    words, matched = model.cut_before_stop(model.tokens("The weather in Paris"), [" in", "zz"])
    assert "".join(words) == "The weather"
    assert matched == " in"
    assert model.cut_before_stop(["a"], None) == (["a"], None)


def test_fake_engines_are_registered_with_their_features() -> None:
    entries = {k: m.entry(0) for k, m in LOCAL_MODELS.items()}
    assert entries["echo/local"].features.tools and entries["echo/local"].features.vision
    assert entries["echo/local"].features.reasoning
    assert entries["echo-tgi/local"].engine == "tgi"
    assert entries["echo-tgi-legacy/local"].engine == "tgi"
    assert entries["echo-lmi/local"].engine == "lmi"
    for name in ("echo-tgi/local", "echo-tgi-legacy/local", "echo-lmi/local"):
        assert entries[name].families == ["chat", "invocations"]
        assert entries[name].features.tools

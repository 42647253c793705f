"""The deterministic "echo" model behind every fake chat container (vLLM, TGI, LMI).

What the model *says* lives here, once; how each engine *frames* it (chunk shapes, stop
semantics, finish reasons, errors) lives in the engine modules. The model:
- answers with the last user message (plus " [N images]" when it got images);
- after a tool round trip (an assistant `tool_calls` turn followed by `tool` results)
  answers in prose: "Tool result: <content>";
- with a JSON response format answers `{"echo": "<message>"}` or, given a schema, an
  object filling the schema's required properties with the message;
- calls tools with arguments filling each required string property with the message;
- "thinks" (`Thinking about: <message>`) when reasoning is on;
- completes a legacy `prompt` with the prompt's last non-blank line (`prompt_echo`).
One token is one word with its leading whitespace, so streamed tokens join back to the
text exactly. The end-of-sequence token is free: usage counts only the words."""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\s*\S+")
# Tool-call JSON is cut the way tokenizers cut it: word runs and punctuation runs, each
# with its leading whitespace (`{"`, `city`, `":`, ` "`, `Paris`, `"}`).
_JSON_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+$")
# The echo model's end-of-sequence token text (a special token; TGI shows its text).
EOS_TEXT = "</s>"
# Log probability of the alternatives a certain model never picks (vLLM's floor).
IMPOSSIBLE = -9999.0


def tokens(text: str) -> list[str]:
    """Words with their leading whitespace; trailing whitespace rides on the last one,
    so the tokens always join back to the text."""
    words = _TOKEN.findall(text)
    tail = text[len(text.rstrip()) :]
    if words and tail:
        words[-1] += tail
    return words


def json_pieces(text: str) -> list[str]:
    """A JSON text cut into token-like fragments that join back to it."""
    return _JSON_PIECE.findall(text)


def message_text(content: Any) -> str:
    """Text of an OpenAI message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def image_count(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(tokens(message_text(m.get("content")))) for m in messages)


def last_user(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})


def user_text(messages: list[dict[str, Any]]) -> str:
    """The last user message as the model repeats it, images mentioned."""
    content = last_user(messages).get("content")
    text, images = message_text(content), image_count(content)
    if not images:
        return text
    note = f"[{images} image{'s' if images > 1 else ''}]"
    return f"{text} {note}" if text else note


def tool_results(messages: list[dict[str, Any]]) -> list[str] | None:
    """The `tool` results answering the latest assistant `tool_calls` turn, if the
    conversation ends with such a round trip (else None)."""
    results: list[str] = []
    for message in reversed(messages):
        role = message.get("role")
        if role == "tool":
            results.insert(0, message_text(message.get("content")))
        elif role == "assistant" and message.get("tool_calls") and results:
            return results
        else:
            return None
    return None


def prose(messages: list[dict[str, Any]]) -> str:
    results = tool_results(messages)
    if results is not None:
        return "Tool result: " + "; ".join(results)
    return user_text(messages)


# --- JSON answers: response formats and tool arguments -----------------------------


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}
    return schema


_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00",
    "uuid": "00000000-0000-0000-0000-000000000000",
    "email": "echo@example.com",
    "uri": "https://example.com",
}


def fill(schema: Any, text: str, root: dict[str, Any] | None = None) -> Any:
    """A value valid for `schema`: strings get `text`, objects their required
    properties, other types a simple valid value."""
    if not isinstance(schema, dict):
        return text
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or [] if _resolve(o, root).get("type") != "null"]
        if options:
            return fill(options[0], text, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {name: fill(properties.get(name, {}), text, root) for name in _required(schema)}
    if kind == "array":
        return [fill(schema.get("items", {}), text, root)] if schema.get("minItems") else []
    simple = {"integer": 0, "number": 0, "boolean": False, "null": None}
    if kind in simple:
        return simple[kind]
    return _FORMATS.get(str(schema.get("format")), text)


def _required(schema: dict[str, Any]) -> list[str]:
    required = schema.get("required")
    return [r for r in required if isinstance(r, str)] if isinstance(required, list) else []


def json_answer(response_format: Any, text: str) -> str | None:
    """The JSON an answer must be under `response_format` (OpenAI's `json_object` /
    `json_schema`, or TGI's `json` with a `value` schema); None for free text."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
    elif kind in ("json_object", "json"):
        schema = response_format.get("value")
    else:
        return None
    if isinstance(schema, dict) and (schema.get("properties") or schema.get("$ref")):
        return json.dumps(fill(schema, text), ensure_ascii=False)
    return json.dumps({"echo": text}, ensure_ascii=False)


@dataclass(frozen=True)
class PlannedCall:
    name: str
    arguments: dict[str, Any]


def plan_calls(
    tools: list[dict[str, Any]], choice: str, text: str, *, parallel: bool
) -> list[PlannedCall]:
    """The calls the model makes: the named tool, or for "auto"/"required" the first
    tool (and the second one too when parallel calls are allowed)."""

    def call(tool: dict[str, Any]) -> PlannedCall:
        function = tool.get("function") or {}
        arguments = fill(function.get("parameters") or {"type": "object"}, text)
        return PlannedCall(
            str(function.get("name")), arguments if isinstance(arguments, dict) else {}
        )

    if choice not in ("auto", "required"):
        return [call(t) for t in tools if (t.get("function") or {}).get("name") == choice][:1]
    return [call(t) for t in tools[: 2 if parallel else 1]]


def logprob_candidates(token: str, top: int) -> list[tuple[str, float]]:
    """The top-`top` candidates for a token: the token itself (certain) and stand-ins
    that a deterministic model never picks."""
    if top <= 0:
        return []
    return [(token, 0.0)] + [(f"<|alt{j}|>", IMPOSSIBLE) for j in range(1, top)]


# --- vLLM/OpenAI stop semantics, kept for the unit tests and callers of echo_answer --


def cut_before_stop(words: list[str], stops: Any) -> tuple[list[str], str | None]:
    """The text before the earliest stop string (which may start inside a word, or span
    words): whole words up to it, then the cut word's head. Also the stop matched."""
    stops = [stops] if isinstance(stops, str) else list(stops or [])
    text = "".join(words)
    found = [(text.find(s), s) for s in stops if isinstance(s, str) and s and s in text]
    if not found:
        return words, None
    cut, matched = min(found)
    kept, length = [], 0
    for word in words:
        if length + len(word) > cut:
            if cut > length:
                kept.append(word[: cut - length])
            break
        kept.append(word)
        length += len(word)
    return kept, matched


def echo_answer(body: dict[str, Any]) -> tuple[list[str], str, int]:
    """(tokens to send, finish_reason, prompt token count) for a plain chat request
    under vLLM's semantics: stop strings cut before the match, then max tokens."""
    messages = body["messages"]
    words, _ = cut_before_stop(tokens(prose(messages)), body.get("stop"))
    finish = "stop"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None and len(words) > int(limit):
        words, finish = words[: int(limit)], "length"
    return words, finish, prompt_tokens(messages)


# --- legacy completions (`prompt`) ---------------------------------------------------
# The echo model claims the shape of the local chat model (SmolLM2-135M: 8192 positions,
# 49152 token ids), so length and vocabulary checks fail where a small real model's do.
MAX_MODEL_LEN = 8192
VOCAB_SIZE = 49152


def prompt_echo(prompt: str) -> str:
    """A prompt's completion: its last non-blank line, stripped, after one space (none
    when the prompt already ends in whitespace), so prompt + completion reads as that
    line said twice: "Say it\nThe weather in Paris" -> " The weather in Paris". A
    prompt without words completes with nothing (end of sequence at once)."""
    lines = [line.strip() for line in prompt.splitlines() if line.strip()]
    if not lines:
        return ""
    return ("" if prompt[-1].isspace() else " ") + lines[-1]


def decode(ids: list[int]) -> str:
    """The echo tokenizer reading token ids: each id is the word spelling its number,
    so [9906, 1917] reads "9906 1917", which tokenizes back to two tokens."""
    return " ".join(str(i) for i in ids)


def token_id(token: str) -> int:
    """A token's id: a number word is its own id (decode's inverse); any other token
    gets a stable id from its text."""
    word = token.strip()
    if word.isascii() and word.isdigit() and int(word) < VOCAB_SIZE:
        return int(word)
    return zlib.crc32(token.encode()) % VOCAB_SIZE


def alternative_id(rank: int) -> int:
    """The id of the `<|altN|>` stand-in at `rank` (2, 3, ...): the vocabulary's last
    ids, where special tokens live."""
    return VOCAB_SIZE - rank + 1

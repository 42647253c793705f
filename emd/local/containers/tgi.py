"""A fake TGI (text-generation-inference) container speaking the Messages API on
/invocations (router/src/sagemaker.rs: the body is a generate, chat or completion
request, untagged) for `echo-tgi/local` (TGI >= 3.2.0) and `echo-tgi-legacy/local`
(2.4 to 3.1), driven by the echo model (echo_model.py).

Mimics huggingface/text-generation-inference: router/src/chat.rs and
router/src/infer/tool_grammar.rs at 03fe626 (3.2+ streaming, `parse_output`, "Tool with
name X not found"), router/src/server.rs at 003eaec and router/src/lib.rs (2.4 era;
find_string id 4565614132) for the legacy era, router/src/infer/mod.rs at 0581626
(`InferError`, error types), router/src/validation.rs (`ValidationError` texts), the
integration snapshots test_tools_llama/test_flash_llama_grammar_tools_{nostream,
choice_stream}.json at 19bb224 (3.1.2/3.2 shapes) and PR #2668 (stream errors as
events). Quirks kept (stream details in tgi_stream.py):
- every object starts with `"object"` (serde's internally tagged `CompletionType`),
  `id` is "", `system_fingerprint` is "<version>-<docker label>", chunks carry
  `"usage": null`, there is no role-only first chunk, `[DONE]` ends the stream;
- finish reasons as `FinishReason::format(true)`: "stop" (end of sequence),
  "length", "stop_sequence"; a tool call finishes "stop", never "tool_calls";
- stop sequences stop only at token boundaries and stay in the text;
- only `max_tokens` limits the answer (`max_completion_tokens` is not a TGI field);
  `n`, `parallel_tool_calls` and `logit_bias` values are ignored (one choice, one call),
  but `logit_bias` is `Option<Vec<f32>>` (every version), so OpenAI's map does not
  deserialize, nor does a string `stop` (`Option<Vec<String>>`) or `stream: null`;
- `response_format` is `GrammarType`, adjacently tagged `{"type", "value"}`: `json`
  (alias `json_object`) with a schema (an object, or a string of one), `regex` with a
  string and, from 3.3.0, `json_schema` with `{"name"?, "schema"}`. OpenAI's shapes
  (`{"type": "json_schema", "json_schema": ...}`, `{"type": "json_object"}`) lack
  `value` and do not deserialize; a schema without `properties` is a validation error
  ("grammar is not valid: Grammar must have a 'properties' field"), as is a `json`
  value that is neither object nor string ("grammar is not supported"). The answer
  follows the grammar: the echo model fills the schema (echo_model.json_answer); for a
  regex it answers the first of its JSON object or its prose that matches (Python's
  `re`), else the request fails, a limit of this fake;
- tool calls: id "0", `function.description: null`; `arguments` a JSON string from
  3.2.0, an object before; non-stream `tool_calls` is a list in both eras;
- errors: a body that matches no request type is a 422 in text/plain (axum's Json
  rejection); tool errors are 422 `{"error": "Tool error: ...", "error_type":
  "tool_error"}`; validation errors are 422 `{"error": "Input validation error: ...",
  "error_type": "validation"}`, but for a streamed request they arrive inside a 200
  stream as `data: {"error": {"message": ..., "http_status_code": 422}}` then [DONE];
- roles are not checked (the chat template decides), so `developer` is accepted.
TGI has no reasoning field. A body that is no chat request but a completion request
(`prompt`) is a legacy completion: tgi_completion.py."""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal

from starlette.responses import JSONResponse, PlainTextResponse, Response

from . import echo_model as model
from . import tgi_completion
from .fake_container import FakeChatContainer
from .openai_wire import SSE_DONE, sse
from .tgi_stream import TgiAnswer, TgiStream, Tok

ToolFormat = Literal["3.2", "legacy"]
_CHUNK_TYPES = ("text", "image_url")
# GrammarType's variants (`json_object` is an alias of `json`); `json_schema` from 3.3.0.
_GRAMMARS = ("json", "json_object", "regex")
_GRAMMARS_33 = (*_GRAMMARS, "json_schema")


def _is_number(value: Any, *, unsigned: bool = False, integer: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        return False
    return not unsigned or value >= 0


def _message_ok(message: Any) -> bool:
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        return False
    content = message.get("content")
    if isinstance(content, list):
        return all(
            isinstance(p, dict) and p.get("type") in _CHUNK_TYPES and p.get(p["type"]) is not None
            for p in content
        )
    return isinstance(content, str) or isinstance(message.get("tool_calls"), list)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _tool_ok(tool: Any) -> bool:
    function = tool.get("function") if isinstance(tool, dict) else None
    return isinstance(function, dict) and isinstance(function.get("name"), str)


def _grammar_ok(fmt: Any, kinds: tuple[str, ...]) -> bool:
    """Whether serde reads `fmt` as a `GrammarType` (`tag = "type", content = "value"`;
    other keys are ignored, a missing `value` fails)."""
    if not isinstance(fmt, dict) or fmt.get("type") not in kinds or "value" not in fmt:
        return False
    value = fmt["value"]
    if fmt["type"] == "regex":
        return isinstance(value, str)
    if fmt["type"] == "json_schema":  # JsonSchemaConfig {name: Option<String>, schema}
        return (
            isinstance(value, dict)
            and "schema" in value
            and (value.get("name") is None or isinstance(value["name"], str))
        )
    return True  # serde_json::Value


def grammar_schema(fmt: dict[str, Any]) -> Any:
    """The JSON schema of a `json` / `json_schema` grammar (a `json` string is parsed
    again, as validation.rs does); None if it is no JSON."""
    value = fmt["value"]
    if fmt["type"] == "json_schema":
        return value["schema"]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _tool_choice(value: Any) -> str | None:
    """ToolChoice's deserializer: auto/none/required, a function name, or OpenAI's
    object; None if it does not deserialize."""
    if value is None:
        return "auto"
    if isinstance(value, str):
        return value
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


class TgiContainer(FakeChatContainer):
    served_model_name = "echo"

    def __init__(
        self,
        delay: float = 0.0,
        *,
        tool_format: ToolFormat = "3.2",
        version: str | None = None,
        max_total_tokens: int = 4096,
    ) -> None:
        super().__init__(delay)
        self.legacy = tool_format == "legacy"
        version = version or ("3.0.1" if self.legacy else "3.3.6")
        # `{version}-{docker_label or "native"}`; the DLC's docker label is unknown.
        self.fingerprint = f"{version}-native"
        self.max_total_tokens = max_total_tokens
        major_minor = tuple(int(p) for p in version.split(".")[:2])
        self.grammars = _GRAMMARS_33 if major_minor >= (3, 3) else _GRAMMARS

    # --- request checks, in the order TGI makes them ---------------------------------

    def deserialize_error(self, raw: bytes, body: Any) -> Response | None:
        if not isinstance(body, dict) or not (
            self._fields_ok(body) or tgi_completion.request_ok(body)
        ):
            last_line = raw.strip().split(b"\n")
            return PlainTextResponse(
                "Failed to deserialize the JSON body into the target type: data did not "
                "match any variant of untagged enum SagemakerRequest at line "
                f"{len(last_line)} column {len(last_line[-1])}",
                status_code=422,
            )
        return None

    def _fields_ok(self, body: dict[str, Any]) -> bool:
        """Whether serde would deserialize the body as a `ChatRequest`."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(_message_ok(m) for m in messages):
            return False
        unsigned = ("max_tokens", "top_logprobs", "n", "seed")
        if any(
            body.get(k) is not None and not _is_number(body[k], unsigned=True, integer=True)
            for k in unsigned
        ):
            return False
        floats = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
        if any(body.get(k) is not None and not _is_number(body[k]) for k in floats):
            return False
        if "stream" in body and not isinstance(body["stream"], bool):
            return False  # `stream: bool` with a default: null does not deserialize
        if body.get("logprobs") is not None and not isinstance(body["logprobs"], bool):
            return False
        stop, tools, fmt = body.get("stop"), body.get("tools"), body.get("response_format")
        if stop is not None and not _strings(stop):
            return False  # `Option<Vec<String>>`: a string does not deserialize
        if tools is not None and not (isinstance(tools, list) and all(_tool_ok(t) for t in tools)):
            return False
        if fmt is not None and not _grammar_ok(fmt, self.grammars):
            return False
        bias = body.get("logit_bias")
        if bias is not None and not (isinstance(bias, list) and all(_is_number(b) for b in bias)):
            return False  # `logit_bias: Option<Vec<f32>>` (unused)
        return _tool_choice(body.get("tool_choice")) is not None

    def validation_error(self, body: dict[str, Any], prompt_tokens: int) -> str | None:
        """router/src/validation.rs checks (temperature 0 means greedy in chat)."""
        temperature, top_p = body.get("temperature"), body.get("top_p")
        stops = self.stops(body)
        if temperature is not None and temperature < 0:
            return "`temperature` must be strictly positive"
        if top_p is not None and not 0.0 < top_p < 1.0:
            return "`top_p` must be > 0.0 and < 1.0"
        if body.get("max_tokens") == 0:
            return "`max_new_tokens` must be strictly positive"
        if len(stops) > 4:
            return f"`stop` supports up to 4 stop sequences. Given: {len(stops)}"
        top_n = body.get("top_logprobs") or 0
        if top_n > 5:
            return f"`top_n_tokens` must be >= 0 and <= 5. Given: {top_n}"
        max_new = body.get("max_tokens")
        if max_new is not None and prompt_tokens + max_new > self.max_total_tokens:
            return (
                f"`inputs` tokens + `max_new_tokens` must be <= {self.max_total_tokens}. "
                f"Given: {prompt_tokens} `inputs` tokens and {max_new} `max_new_tokens`"
            )
        return self.grammar_error(body.get("response_format"))

    @staticmethod
    def grammar_error(fmt: dict[str, Any] | None) -> str | None:
        """validation.rs on a grammar (after the other checks)."""
        if fmt is None or fmt["type"] == "regex":
            return None
        if fmt["type"] != "json_schema" and not isinstance(fmt["value"], (dict, str)):
            return "grammar is not supported"
        schema = grammar_schema(fmt)
        if not isinstance(schema, dict):
            return "grammar is not valid: the schema is not a JSON object"
        if "properties" not in schema:
            return "grammar is not valid: Grammar must have a 'properties' field"
        return None

    @staticmethod
    def stops(body: dict[str, Any]) -> list[str]:
        stop = body.get("stop") or []
        return [stop] if isinstance(stop, str) else list(stop)

    # --- generation ------------------------------------------------------------------

    def generate(self, body: dict[str, Any]) -> TgiAnswer | str:
        """The tokens the model emits, or a tool error message."""
        messages = body["messages"]
        choice = _tool_choice(body.get("tool_choice")) or "auto"
        tools = body.get("tools") or []
        names = [t["function"]["name"] for t in tools]
        if tools and choice not in ("auto", "none", "required") and choice not in names:
            return f"Tool with name {choice} not found"
        if body.get("response_format") is not None and body.get("tools") is not None:
            return "Grammar and tools are mutually exclusive"
        text = model.message_text(model.last_user(messages).get("content"))
        calling = bool(tools) and choice != "none"
        if calling and choice == "auto" and model.tool_results(messages) is not None:
            calling = False  # the grammar's `no_tool`: the model answers in prose
        common = {
            "prompt_tokens": model.prompt_tokens(messages),
            "logprobs": bool(body.get("logprobs")),
            "top_n": body.get("top_logprobs") or 0,
            "include_usage": bool((body.get("stream_options") or {}).get("include_usage")),
        }
        if calling:
            [call] = model.plan_calls(tools, choice, text, parallel=False)
            grammar_json = json.dumps(
                {"function": {"_name": call.name, **call.arguments}}, ensure_ascii=False
            )
            toks = [Tok(p) for p in model.json_pieces(grammar_json)]
            return TgiAnswer([*toks, Tok(model.EOS_TEXT, True)], "stop", True, **common)
        words = model.tokens(self._answer_text(body))
        toks, finish = self._stopping(words, self.stops(body), body.get("max_tokens"))
        return TgiAnswer(toks, finish, False, **common)

    @staticmethod
    def _answer_text(body: dict[str, Any]) -> str:
        """The answer's text under the request's grammar, if any."""
        messages, fmt = body["messages"], body.get("response_format")
        text = model.user_text(messages)
        if fmt is None:
            return model.prose(messages)
        if fmt["type"] != "regex":
            schema = grammar_schema(fmt)
            return model.json_answer({"type": "json", "value": schema}, text) or ""
        # A control character or backslash would need an escape the object regex of
        # outlines-core does not allow: the model would write another character.
        plain = re.sub(r"[\x00-\x1f\x7f-\x9f\\]", " ", text)
        candidates = [json.dumps({"echo": plain}, ensure_ascii=False), model.prose(messages)]
        for candidate in candidates:
            if re.fullmatch(fmt["value"], candidate):
                return candidate
        raise ValueError("the echo fake cannot write an answer matching this regex grammar")

    @staticmethod
    def _stopping(words: list[str], stops: list[str], max_new: int | None) -> tuple[list[Tok], str]:
        """StoppingCriteria: the length limit first, then a stop sequence at the end of
        the text (so only at token boundaries, and kept); else end of sequence."""
        toks, text = [], ""
        for word in words:
            toks.append(Tok(word))
            text += word
            if max_new is not None and len(toks) >= max_new:
                return toks, "length"
            if any(s and text.endswith(s) for s in stops):
                return toks, "stop_sequence"
        return [*toks, Tok(model.EOS_TEXT, True)], "stop"

    def completion(self, answer: TgiAnswer) -> dict[str, Any]:
        message: dict[str, Any]
        if answer.tools:
            generated = "".join(t.text for t in answer.toks if not t.special)
            function = json.loads(generated)["function"]
            name = function.pop("_name")
            arguments: Any = function
            if not self.legacy:  # serialize_as_string: serde_json::to_string
                arguments = json.dumps(function, ensure_ascii=False, separators=(",", ":"))
            call = {"description": None, "name": name, "arguments": arguments}
            message = {
                "role": "assistant",
                "tool_calls": [{"id": "0", "type": "function", "function": call}],
            }
        else:
            text = "".join(t.text for t in answer.toks if not t.special)
            message = {"role": "assistant", "content": text}
        logprobs = {"content": [answer.logprob_entry(t.text) for t in answer.toks]}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": logprobs if answer.logprobs else None,
            "finish_reason": answer.finish,
        }
        return {
            "object": "chat.completion",
            "id": "",
            "created": int(time.time()),
            "model": self.served_model_name,
            "system_fingerprint": self.fingerprint,
            "choices": [choice],
            "usage": answer.usage(),
        }

    # --- the endpoint ----------------------------------------------------------------

    async def answer(self, raw: bytes) -> Response:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return PlainTextResponse(
                f"Failed to parse the request body as JSON: {exc}", status_code=400
            )
        if (rejected := self.deserialize_error(raw, body)) is not None:
            return rejected
        if not self._fields_ok(body):
            return await self.complete(body)
        try:
            generated = self.generate(body)
        except ValueError as exc:  # a regex this fake cannot satisfy
            return JSONResponse({"error": str(exc), "error_type": "fake"}, status_code=500)
        if isinstance(generated, str):
            error = {"error": f"Tool error: {generated}", "error_type": "tool_error"}
            return JSONResponse(error, status_code=422)
        problem = self.validation_error(body, generated.prompt_tokens)
        delay = self.pace(body)
        if body.get("stream"):
            if problem is not None:
                event = {
                    "error": {
                        "message": f"Input validation error: {problem}",
                        "http_status_code": 422,
                    }
                }
                frames = iter([(sse(event), False)])
            else:
                stream = TgiStream(generated, self.served_model_name, self.fingerprint, self.legacy)
                frames = ((sse(chunk), True) for chunk in stream.chunks())
            return self.stream(frames, delay, SSE_DONE, "text/event-stream")
        if problem is not None:
            error = {"error": f"Input validation error: {problem}", "error_type": "validation"}
            return JSONResponse(error, status_code=422)
        await self.wait(delay, len(generated.toks))
        return JSONResponse(self.completion(generated))

    async def complete(self, body: dict[str, Any]) -> Response:
        """A legacy completion: `completions` in router/src/server.rs."""
        if (refused := tgi_completion.refusal(body)) is not None:
            return JSONResponse(refused, status_code=422)
        texts = tgi_completion.prompts(body)
        problems = [
            tgi_completion.validation_error(
                text, body, self.max_total_tokens, chunked=not self.legacy
            )
            for text in texts
        ]
        completions = [
            tgi_completion.generate(i, text, body, self.max_total_tokens, self._stopping)
            for i, text in enumerate(texts)
        ]
        delay = self.pace(body)
        if body.get("stream"):
            streams = [
                [tgi_completion.error_event(problem)]
                if problem is not None
                else tgi_completion.prompt_events(
                    completion, self.served_model_name, self.fingerprint
                )
                for problem, completion in zip(problems, completions, strict=True)
            ]
            frames = (
                (sse(event), "error" not in event) for event in tgi_completion.interleave(streams)
            )
            return self.stream(frames, delay, SSE_DONE, "text/event-stream")
        if (problem := next((p for p in problems if p is not None), None)) is not None:
            error = {"error": f"Input validation error: {problem}", "error_type": "validation"}
            return JSONResponse(error, status_code=422)
        await self.wait(delay, max(len(c.toks) for c in completions))
        return JSONResponse(
            tgi_completion.final(completions, self.served_model_name, self.fingerprint)
        )

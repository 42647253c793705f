"""TGI's legacy completions (a body with `prompt`) for the fake TGI container (tgi.py),
in both eras it serves (3.2+ and 2.4-3.1, whose completions differ only in the length
check).

Mimics huggingface/text-generation-inference at v3.3.6 (and v3.0.1 for the legacy era):
router/src/sagemaker.rs (the untagged `SagemakerRequest`: Generate, Chat, then
Completion), router/src/lib.rs (`CompletionRequest`, `Prompt`, `Completion`,
`CompletionFinal`, `CompletionComplete`, `Chunk`, `FinishReason`), router/src/server.rs
`completions`, router/src/validation.rs `validate`/`validate_input` and
router/src/infer/mod.rs `into_openai_event`; launcher defaults max_client_batch_size 4,
max_stop_sequences 4. Quirks kept:
- the request has only model, prompt, max_tokens, temperature, top_p, stream, seed,
  suffix, repetition_penalty, frequency_penalty and stop; anything else (`n`,
  `logprobs`, `echo`, `stream_options`...) is ignored. `prompt` is a string or a
  non-empty list of strings (token ids do not deserialize), `stop` must be a list,
  `max_tokens` a u32 and `stream` a boolean (null fails): a body that matches no
  request type is axum's 422 in text/plain;
- `suffix` (any string, even "") and more than 4 prompts are 422 `{"error",
  "error_type"}` before anything runs; each prompt is then a generate request of its
  own: validation errors are 422 `{"error": "Input validation error: ...",
  "error_type": "validation"}`, or, streamed, `{"error": {"message", "http_status_code":
  422}}` events in a 200 stream (one per failing prompt; the others still answer);
- `temperature: 0` means greedy; `top_p` must be below 1; no `max_tokens` means up to
  the context; from 3.1.1 the length check counts at most 1024 new tokens;
- every object carries `"object": "text_completion"` first, `id` "", the model id and
  `system_fingerprint`; choices are `{index, text, logprobs: null, finish_reason}`;
- non-streamed: one object, a choice per prompt, finish "stop" (end of sequence),
  "length" or "stop_sequence", usage summed over the prompts;
- streamed: a chunk per token with `finish_reason: ""` and no usage; each prompt's last
  token comes as a final object with the prompt's own usage and the finish as TGI's
  Display writes it ("eos_token", "length", "stop_sequence") and, at the end of
  sequence, the token's raw text ("</s>"); the prompts' streams interleave token by
  token; `data: [DONE]` ends it all;
- stop sequences stop at token boundaries and stay in the text (tgi.py `_stopping`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import echo_model as model
from .tgi_stream import Tok

MAX_CLIENT_BATCH_SIZE = 4
MAX_STOP_SEQUENCES = 4
DEFAULT_GENERATION_LENGTH = 1024
_U32 = 2**32 - 1
_U64 = 2**64 - 1
# TgiContainer._stopping: (words, stop sequences, max new tokens) -> (tokens, finish).
Stopping = Callable[[list[str], list[str], int | None], tuple[list[Tok], str]]


def _unsigned(value: Any, top: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top


def _float(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def request_ok(body: dict[str, Any]) -> bool:
    """Whether serde would deserialize the body as TGI's `CompletionRequest`."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) and not (
        isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt)
    ):
        return False  # missing, null, token ids, or an empty array (Prompt's try_from)
    if "stream" in body and not isinstance(body["stream"], bool):
        return False
    optional: dict[str, Any] = {
        "model": lambda v: isinstance(v, str),
        "max_tokens": lambda v: _unsigned(v, _U32),
        "seed": lambda v: _unsigned(v, _U64),
        "suffix": lambda v: isinstance(v, str),
        "stop": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
        "temperature": _float,
        "top_p": _float,
        "repetition_penalty": _float,
        "frequency_penalty": _float,
    }
    return all(body.get(k) is None or ok(body[k]) for k, ok in optional.items())


def prompts(body: dict[str, Any]) -> list[str]:
    prompt = body["prompt"]
    return [prompt] if isinstance(prompt, str) else list(prompt)


def refusal(body: dict[str, Any]) -> dict[str, str] | None:
    """The 422 `completions` answers before it generates anything."""
    if body.get("suffix") is not None:
        return {
            "error": "Suffix is not supported and can be achieved by preprocessing the prompt.",
            "error_type": "suffix not supported",
        }
    if len(prompts(body)) > MAX_CLIENT_BATCH_SIZE:
        return {
            "error": "Number of prompts exceeds the maximum allowed batch size of "
            f"{MAX_CLIENT_BATCH_SIZE}",
            "error_type": "batch size exceeded",
        }
    return None


def stops(body: dict[str, Any]) -> list[str]:
    return list(body.get("stop") or [])


def validation_error(
    prompt: str, body: dict[str, Any], max_total_tokens: int, *, chunked: bool
) -> str | None:
    """`Validation::validate` for one prompt's generate request, in its order."""
    temperature = body.get("temperature")
    if temperature == 0.0:
        temperature = None  # `Some(0.0) => (false, None)`: greedy
    if temperature is not None and temperature <= 0.0:
        return "`temperature` must be strictly positive"
    repetition = body.get("repetition_penalty")
    if repetition is not None and repetition <= 0.0:
        return "`repetition_penalty` must be strictly positive"
    frequency = body.get("frequency_penalty")
    if frequency is not None and not -2.0 <= frequency <= 2.0:
        return "`frequency_penalty` must be >= -2.0 and <= 2.0"
    top_p = body.get("top_p")
    if top_p is not None and not 0.0 < top_p < 1.0:
        return "`top_p` must be > 0.0 and < 1.0"
    max_new = body.get("max_tokens")
    if max_new == 0:
        return "`max_new_tokens` must be strictly positive"
    if len(stops(body)) > MAX_STOP_SEQUENCES:
        return (
            f"`stop` supports up to {MAX_STOP_SEQUENCES} stop sequences. Given: {len(stops(body))}"
        )
    if prompt == "":
        return "`inputs` cannot be empty"
    input_length = len(model.tokens(prompt))
    if max_new is None:
        checked = min(max(max_total_tokens - input_length, 0), DEFAULT_GENERATION_LENGTH)
    else:
        # 3.1.1+ (#3016) checks one 1024-token chunk of a large max_new_tokens.
        checked = min(max_new, DEFAULT_GENERATION_LENGTH) if chunked else max_new
    if input_length + checked > max_total_tokens:
        return (
            f"`inputs` tokens + `max_new_tokens` must be <= {max_total_tokens}. "
            f"Given: {input_length} `inputs` tokens and {checked} `max_new_tokens`"
        )
    return None


@dataclass(frozen=True)
class TgiCompletion:
    """One prompt's generation: its tokens (the last may be the special end of
    sequence) and how it finished, as FinishReason::format(true) writes it."""

    index: int
    toks: list[Tok]
    finish: str
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.toks if not t.special)

    @property
    def completion_tokens(self) -> int:
        # As for chat (tgi_stream.TgiAnswer): the end-of-sequence token is free.
        return sum(1 for t in self.toks if not t.special)


def generate(
    index: int, prompt: str, body: dict[str, Any], max_total_tokens: int, stopping: Stopping
) -> TgiCompletion:
    """The echo of one prompt under TGI's stopping criteria (`stopping` is
    TgiContainer._stopping: length first, then a stop sequence at a token boundary)."""
    input_length = len(model.tokens(prompt))
    limit = body.get("max_tokens")
    if limit is None:
        limit = max(max_total_tokens - input_length, 1)  # up to the context
    toks, finish = stopping(model.tokens(model.prompt_echo(prompt)), stops(body), limit)
    return TgiCompletion(index, toks, finish, input_length)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def final(completions: list[TgiCompletion], model_id: str, fingerprint: str) -> dict[str, Any]:
    """The non-streamed `Completion::Final`."""
    choices = [
        {"index": c.index, "text": c.text, "logprobs": None, "finish_reason": c.finish}
        for c in completions
    ]
    return {
        "object": "text_completion",
        "id": "",
        "created": int(time.time()),
        "model": model_id,
        "system_fingerprint": fingerprint,
        "choices": choices,
        "usage": _usage(
            sum(c.prompt_tokens for c in completions),
            sum(c.completion_tokens for c in completions),
        ),
    }


def prompt_events(completion: TgiCompletion, model_id: str, fingerprint: str) -> list[dict]:
    """One prompt's stream: a `Completion::Chunk` per token, the last token as a
    `Completion::Final` with the prompt's usage."""
    events: list[dict[str, Any]] = []
    for position, tok in enumerate(completion.toks):
        now = int(time.time())
        if position < len(completion.toks) - 1:
            events.append(
                {
                    "object": "text_completion",
                    "id": "",
                    "created": now,
                    "choices": [
                        {
                            "index": completion.index,
                            "text": tok.text,
                            "logprobs": None,
                            "finish_reason": "",
                        }
                    ],
                    "model": model_id,
                    "system_fingerprint": fingerprint,
                }
            )
            continue
        # FinishReason's Display, not format(true): the end of sequence is "eos_token".
        finish = "eos_token" if completion.finish == "stop" else completion.finish
        events.append(
            {
                "object": "text_completion",
                "id": "",
                "created": now,
                "model": model_id,
                "system_fingerprint": fingerprint,
                "choices": [
                    {
                        "index": completion.index,
                        "text": tok.text,
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": _usage(completion.prompt_tokens, completion.completion_tokens),
            }
        )
    return events


def error_event(problem: str) -> dict[str, Any]:
    """InferError::into_openai_event for a validation error."""
    return {"error": {"message": f"Input validation error: {problem}", "http_status_code": 422}}


def interleave(streams: list[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """The prompts' streams merged as `completions` merges them: one event from each
    in turn, dropping the streams that end."""
    position = 0
    while any(position < len(s) for s in streams):
        for stream in streams:
            if position < len(stream):
                yield stream[position]
        position += 1

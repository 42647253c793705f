"""vLLM's legacy completion answers, field for field: the `text_completion` object
(`model_dump()`, nulls included) and its stream (`model_dump_json(exclude_unset=True)`),
as dicts that echo.py frames as SSE and lmi.py as JSON lines.

Mimics vllm-project/vllm completion/serving.py at 030ea52
(`completion_stream_generator`, `request_output_to_completion_response`,
`_create_completion_logprobs`) and completion/protocol.py at 002032e
(`CompletionResponse*`, `CompletionLogProbs`). Quirks kept:
- every stream chunk has one choice with all seven of its fields (`prompt_token_ids`
  and `token_ids` null); choice `index` is prompt_index * n + i; `n` choices and
  several prompts interleave, one chunk each per step;
- `echo` puts the prompt in front of the first chunk (and of the answer); with
  `max_tokens: 0` the prompt is the whole answer and finishes "length";
- the finish rides on the token that hit the limit or the stop string; otherwise a last
  chunk with `text: ""` ends the choice (the end-of-sequence token);
- `logprobs: N` gives `text_offset` (counted on from the text already sent),
  `token_logprobs`, `tokens` and `top_logprobs` (N entries, at least 1); echoed prompt
  tokens come first, the very first one with null logprobs; `prompt_logprobs` (asked
  for, or implied by echo + logprobs) fills the non-streamed choice's field with vLLM's
  `{token_id: {logprob, rank, decoded_token}}` dicts;
- the usage chunk (`choices: []`, only with `stream_options.include_usage`) drops null
  fields; `continuous_usage_stats` adds running usage to every chunk."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import echo_model as model
from .vllm_completion import PromptAnswer, VllmCompletionPlan


def completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class _Piece:
    """One chunk's worth of a choice: its text, the tokens it carries logprobs for
    (False: the prompt's first token, which has none) and how it finishes."""

    text: str
    tokens: list[tuple[str, bool]]
    finish: str | None = None
    stop_reason: str | None = None
    generated: int = 0  # tokens usage counts


def _top(token: str, top: int) -> dict[str, float]:
    # The engine returns the sampled token plus the top N; for a certain model the
    # sampled token is the top one, so N entries (one when N is 0).
    return dict(model.logprob_candidates(token, max(top, 1)))


def logprobs_object(tokens: list[tuple[str, bool]], top: int, offset: int = 0) -> dict[str, Any]:
    """`_create_completion_logprobs`: offsets count on from `offset` (the text the
    choice already sent)."""
    text_offset, token_logprobs, names, tops = [], [], [], []
    for token, scored in tokens:
        text_offset.append(offset)
        offset += len(token)
        names.append(token)
        token_logprobs.append(0.0 if scored else None)
        tops.append(_top(token, top) if scored else None)
    return {
        "text_offset": text_offset,
        "token_logprobs": token_logprobs,
        "tokens": names,
        "top_logprobs": tops,
    }


def prompt_logprobs(answer: PromptAnswer, top: int) -> list[dict[str, Any] | None]:
    """vLLM's prompt logprobs: none for the first token, then the prompt token and its
    top alternatives as `{token_id: Logprob}` (keys become strings in JSON)."""

    def entry(token: str) -> dict[str, Any]:
        candidates = model.logprob_candidates(token, max(top, 1))
        return {
            str(model.token_id(text) if rank == 1 else model.alternative_id(rank)): {
                "logprob": logprob,
                "rank": rank,
                "decoded_token": text,
            }
            for rank, (text, logprob) in enumerate(candidates, start=1)
        }

    return [None if i == 0 else entry(t) for i, t in enumerate(answer.tokens)]


def _pieces(plan: VllmCompletionPlan, answer: PromptAnswer) -> list[_Piece]:
    """The chunks of one choice, in order."""
    prompt = [(t, i > 0) for i, t in enumerate(answer.tokens)] if plan.echo else []
    if plan.echo_only:
        return [
            _Piece(answer.text, prompt, answer.finish, answer.stop_reason, answer.completion_tokens)
        ]
    pieces = [_Piece(w, [(w, True)], generated=1) for w in answer.words]
    if pieces and (answer.finish == "length" or answer.stop_reason is not None):
        last = pieces[-1]
        pieces[-1] = _Piece(last.text, last.tokens, answer.finish, answer.stop_reason, 1)
    else:  # the end-of-sequence token: no text, and free (as in the chat echo)
        pieces.append(_Piece("", [], answer.finish, answer.stop_reason))
    if plan.echo:
        first = pieces[0]
        pieces[0] = _Piece(
            answer.text + first.text,
            prompt + first.tokens,
            first.finish,
            first.stop_reason,
            first.generated,
        )
    return pieces


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }


def completion(plan: VllmCompletionPlan, served_model: str) -> dict[str, Any]:
    """The non-streamed `text_completion` (CompletionResponse.model_dump())."""
    choices = []
    for answer in plan.answers:
        prompt_part = [(t, i > 0) for i, t in enumerate(answer.tokens)] if plan.echo else []
        tokens = prompt_part + [(w, True) for w in answer.words]
        text = (answer.text if plan.echo else "") + "".join(answer.words)
        logprobs = logprobs_object(tokens, plan.logprobs) if plan.logprobs is not None else None
        prompt_lps = (
            prompt_logprobs(answer, plan.prompt_logprobs)
            if plan.prompt_logprobs is not None
            else None
        )
        for _ in range(plan.n):
            choices.append(
                {
                    "index": len(choices),
                    "text": text,
                    "logprobs": logprobs,
                    "finish_reason": answer.finish,
                    "stop_reason": answer.stop_reason,
                    "token_ids": None,
                    "prompt_logprobs": prompt_lps,
                    "prompt_token_ids": None,
                    "routed_experts": None,
                }
            )
    prompt_tokens = sum(len(a.tokens) for a in plan.answers)
    completion_tokens = sum(a.completion_tokens for a in plan.answers) * plan.n
    return {
        "id": completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": served_model,
        "choices": choices,
        "service_tier": None,
        "system_fingerprint": None,
        "usage": {
            **_usage(prompt_tokens, completion_tokens),
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        },
        "kv_transfer_params": None,
        "ec_transfer_params": None,
        "metrics": None,
    }


def chunks(plan: VllmCompletionPlan, served_model: str) -> Iterator[tuple[dict[str, Any], bool]]:
    """(chunk, generated) pairs in vLLM's order; `generated` marks the chunks a real
    engine spaces by a decoding step (the fakes pace those)."""
    head = {
        "id": completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": served_model,
    }
    choices = [
        (prompt_index * plan.n + i, answer, _pieces(plan, answer))
        for prompt_index, answer in enumerate(plan.answers)
        for i in range(plan.n)
    ]
    sent_text = [0] * len(choices)
    sent_tokens = [0] * len(choices)
    steps = max(len(pieces) for _, _, pieces in choices)
    for step in range(steps):
        first_of_step = True  # a decoding step produces the step's chunks together
        for position, (index, answer, pieces) in enumerate(choices):
            if step >= len(pieces):
                continue
            piece = pieces[step]
            logprobs = None
            if plan.logprobs is not None:
                logprobs = logprobs_object(piece.tokens, plan.logprobs, sent_text[position])
            sent_text[position] += len(piece.text)
            sent_tokens[position] += piece.generated
            choice = {
                "index": index,
                "text": piece.text,
                "logprobs": logprobs,
                "finish_reason": piece.finish,
                "stop_reason": piece.stop_reason,
                "prompt_token_ids": None,
                "token_ids": None,
            }
            chunk: dict[str, Any] = {**head, "choices": [choice]}
            if plan.continuous_usage:
                chunk["usage"] = _usage(len(answer.tokens), sent_tokens[position])
            yield chunk, first_of_step
            first_of_step = False
    if plan.include_usage:
        prompt_tokens = sum(len(a.tokens) for a in plan.answers)
        yield {**head, "choices": [], "usage": _usage(prompt_tokens, sum(sent_tokens))}, False

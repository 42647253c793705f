"""vLLM's chat answers, field for field: the `chat.completion` object (`model_dump()`,
every field, nulls included) and the `chat.completion.chunk` stream
(`model_dump_json(exclude_unset=True)`: only the fields vLLM sets), as dicts that
echo.py frames as SSE and lmi.py as JSON lines.

Mimics vllm-project/vllm at commits 006c49d (entrypoints/openai/chat_completion/
serving.py: `chat_completion_stream_generator`, `chat_completion_full_generator`),
002032e (chat_completion/protocol.py: `ChatMessage`, `ChatCompletionResponse*`),
022e555 (generate/base/protocol.py: `DeltaMessage`, `DeltaToolCall`, `ToolCall`),
02bb669 (tool_parsers/hermes_tool_parser.py) and c77a4fe (tool_parsers/streaming.py),
f1bf7bd (serve/engine/protocol.py: `UsageInfo`, `ErrorResponse`). Quirks kept:
- the first chunk per choice is `{"role": "assistant", "content": ""}` and carries
  `prompt_token_ids: null` and `prompt_text: null`; token chunks carry
  `token_ids: null`; only the final chunk has `stop_reason` (the matched stop string);
- tool calls: `auto` streams like the hermes parser (`content: null`, the name alone
  first, then argument fragments), `required` like `extract_required_tool_call_streaming`
  (later fragments say `"name": null`), a named `tool_choice` like
  `extract_named_tool_call_streaming` (name and first fragment together) and finishes
  with `"stop"`, not `"tool_calls"` (non-stream too); non-stream `content` is null for
  `auto` and "" for `required`/named; `tool_calls` is left out when empty;
- reasoning goes in `reasoning` (vLLM >= 0.17 removed `reasoning_content`; pass
  reasoning_field="reasoning_content" for older servers);
- `n` > 1 streams the choices interleaved, one chunk per choice per step;
- the usage chunk (`choices: []`, only with `stream_options.include_usage`) drops null
  fields."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from . import echo_model as model
from .openai_wire import completion_id as request_id
from .vllm_request import VllmPlan

# vllm/entrypoints/sagemaker/api_router.py: /invocations tries each request type and,
# when none validates, answers this instead of the validation error itself.
NO_HANDLER = (
    "Cannot find suitable handler for request. "
    "Expected one of: ['ChatCompletionRequest', 'CompletionRequest']"
)


def model_not_found(name: str) -> str:
    return f"The model `{name}` does not exist."


def tool_call_id() -> str:
    return f"chatcmpl-tool-{uuid.uuid4().hex}"


def logprobs_content(toks: list[str], top: int) -> list[dict[str, Any]]:
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return [
        {
            **entry(tok, 0.0),
            "top_logprobs": [entry(t, lp) for t, lp in model.logprob_candidates(tok, top)],
        }
        for tok in toks
    ]


def _usage(plan: VllmPlan, *, drop_nulls: bool) -> dict[str, Any]:
    completion = plan.completion_tokens * plan.n
    usage: dict[str, Any] = {
        "prompt_tokens": plan.prompt_tokens,
        "total_tokens": plan.prompt_tokens + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
        "completion_tokens_details": (
            {"reasoning_tokens": len(plan.reasoning) * plan.n} if plan.reasoning_parser else None
        ),
    }
    return {k: v for k, v in usage.items() if v is not None} if drop_nulls else usage


def completion(
    plan: VllmPlan, served_model: str, reasoning_field: str = "reasoning"
) -> dict[str, Any]:
    choices = []
    for index in range(plan.n):
        content: str | None = "".join(plan.words)
        if plan.calls:
            content = None if plan.mode == "auto" else ""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
        }
        if plan.calls:
            message["tool_calls"] = [
                {
                    "id": tool_call_id(),
                    "type": "function",
                    "function": {"name": c.name, "arguments": plan.arguments(c)},
                }
                for c in plan.calls
            ]
        message[reasoning_field] = "".join(plan.reasoning) if plan.reasoning else None
        logprobs = None
        if plan.logprobs:
            logprobs = {"content": logprobs_content(plan.reasoning + plan.words, plan.top_logprobs)}
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": plan.finish,
                "stop_reason": plan.stop_reason,
                "token_ids": None,
                "routed_experts": None,
            }
        )
    return {
        "id": request_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served_model,
        "choices": choices,
        "service_tier": None,
        "system_fingerprint": None,
        "usage": _usage(plan, drop_nulls=False),
        "prompt_logprobs": prompt_logprobs(plan),
        "prompt_token_ids": None,
        "prompt_text": None,
        "kv_transfer_params": None,
        "ec_transfer_params": None,
        "metrics": None,
    }


@dataclass(frozen=True)
class _Step:
    delta: dict[str, Any]
    logprobs: dict[str, Any] | None = None
    finish: str | None = None
    stop_reason: str | None = None


def _tool_steps(plan: VllmPlan) -> list[_Step]:
    steps: list[_Step] = []
    for index, call in enumerate(plan.calls):
        pieces = model.json_pieces(plan.arguments(call)) or [""]
        start = {"id": tool_call_id(), "type": "function", "index": index}
        if plan.mode == "auto":  # hermes: the name alone, then every fragment
            steps.append(
                _Step({"content": None, "tool_calls": [{**start, "function": {"name": call.name}}]})
            )
            steps += [
                _Step(
                    {
                        "content": None,
                        "tool_calls": [{"index": index, "function": {"arguments": p}}],
                    }
                )
                for p in pieces
            ]
            continue
        first = {**start, "function": {"name": call.name, "arguments": pieces[0]}}
        steps.append(_Step({"tool_calls": [first]}))
        name: dict[str, Any] = {"name": None} if plan.mode == "required" else {}
        steps += [
            _Step({"tool_calls": [{"index": index, "function": {**name, "arguments": p}}]})
            for p in pieces[1:]
        ]
    # The end-of-sequence step: the named-tool path still emits an empty fragment.
    if plan.mode == "named":
        last = {"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}
        return [*steps, _Step(last, finish="stop")]
    return [*steps, _Step({}, finish="tool_calls")]


def _steps(plan: VllmPlan, reasoning_field: str) -> list[_Step]:
    def lp(tok: str) -> dict[str, Any] | None:
        return {"content": logprobs_content([tok], plan.top_logprobs)} if plan.logprobs else None

    steps = [_Step({reasoning_field: t}, lp(t)) for t in plan.reasoning]
    if plan.calls:
        return steps + _tool_steps(plan)
    steps += [_Step({"content": t}, lp(t)) for t in plan.words]
    if steps and (plan.finish == "length" or plan.stop_reason is not None):
        # The token that hit the limit (or the stop string) ends the stream itself.
        return [*steps[:-1], replace(steps[-1], finish=plan.finish, stop_reason=plan.stop_reason)]
    eos: dict[str, Any] = {} if plan.reasoning_parser else {"content": ""}
    return [*steps, _Step(eos, finish=plan.finish, stop_reason=plan.stop_reason)]


def chunks(
    plan: VllmPlan, served_model: str, reasoning_field: str = "reasoning"
) -> Iterator[tuple[dict[str, Any], bool]]:
    """(chunk, generated) pairs in vLLM's order; `generated` marks the chunks a real
    engine spaces by a decoding step (the fakes pace those)."""
    rid, created = request_id(), int(time.time())
    head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": served_model}
    sent = 0  # completion tokens so far, for `continuous_usage_stats`

    def running(chunk: dict[str, Any]) -> dict[str, Any]:
        # serving_chat: with include_usage and continuous_usage_stats, every chunk
        # carries the usage so far.
        if plan.continuous_usage:
            chunk["usage"] = {
                "prompt_tokens": plan.prompt_tokens,
                "total_tokens": plan.prompt_tokens + sent,
                "completion_tokens": sent,
            }
        return chunk

    for index in range(plan.n):
        role = {"role": "assistant", "content": ""}
        choice = {"index": index, "delta": role, "logprobs": None, "finish_reason": None}
        first = {**head, "choices": [choice], "prompt_token_ids": None, "prompt_text": None}
        yield running(first), False
    per_choice = [_steps(plan, reasoning_field) for _ in range(plan.n)]
    for position in range(len(per_choice[0])):
        for index, steps in enumerate(per_choice):
            step = steps[position]
            choice = {"index": index, "delta": step.delta, "logprobs": step.logprobs}
            if step.finish is None:
                choice |= {"finish_reason": None, "token_ids": None}
            else:
                choice |= {"finish_reason": step.finish, "stop_reason": step.stop_reason}
                choice["token_ids"] = None
            if step.delta:
                sent += 1
            yield running({**head, "choices": [choice]}), index == 0
    if plan.include_usage:
        yield {**head, "choices": [], "usage": _usage(plan, drop_nulls=True)}, False


def prompt_logprobs(plan: VllmPlan) -> list[dict[str, dict[str, Any]] | None] | None:
    """vLLM's non-stream `prompt_logprobs`: None for the first prompt token (nothing
    precedes it), then per token a map of token id -> {logprob, rank, decoded_token}:
    the prompt's own token and up to `prompt_logprobs` alternatives."""
    if plan.prompt_logprobs is None:
        return None
    entries: list[dict[str, dict[str, Any]] | None] = [None]
    for position in range(1, plan.prompt_tokens):
        own = {str(1000 + position): {"logprob": -0.5, "rank": 1, "decoded_token": "x"}}
        alternatives = {
            str(2000 + k): {"logprob": -1.0 - k, "rank": k + 1, "decoded_token": f"alt{k}"}
            for k in range(1, max(plan.prompt_logprobs, 0) + 1)
        }
        entries.append({**own, **alternatives})
    return entries

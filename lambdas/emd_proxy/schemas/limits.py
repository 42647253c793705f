"""The engines' integer limits, as bounds on the request fields that reach them.

A value past these reaches no engine whole: vLLM's `seed` is a torch long
(`Field(ge=_LONG_INFO.min, le=_LONG_INFO.max)` in vllm/entrypoints/openai/protocol.py,
`_LONG_INFO = torch.iinfo(torch.long)`), and TGI's router deserialises `max_tokens`,
`n` and `top_logprobs` as `u32`, `top_k` as `i32` and `seed` as `u64`
(huggingface/text-generation-inference router/src/lib.rs), so 10**30 is a 500 or an
engine's serde error instead of a 400 naming the field. OpenAI's own `seed` is an
int64 as vLLM's.

Known fields are strict (pydantic's `StrictInt`, `StrictBool`, `StrictFloat`), as
OpenAI is: `"max_tokens": "10"` and `"stream": "yes"` are type errors, not coerced.
A strict float still takes a JSON integer (`"temperature": 1`)."""

from __future__ import annotations

from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# TGI's u32: token counts, choices, logprob counts.
UINT32_MAX = 2**32 - 1
# TGI's i32 top_k.
INT32_MAX = 2**31 - 1


def oversized_extra(extra: dict[str, Any] | None) -> str | None:
    """The first top-level engine extra whose integer no engine can hold (an int64),
    e.g. vLLM's `min_tokens`; nested values are the engine's to judge (walking them
    would cost every request a second pass over its input)."""
    for name, value in (extra or {}).items():
        if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            return name
    return None

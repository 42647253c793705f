"""A fake DJL LMI container (djl-inference, LMI >= v17 async mode with the vLLM backend)
for `echo-lmi/local`: the echo model (echo_model.py) behind LMI's framing.

Mimics deepjavalibrary/djl-serving at commits 071f3cc (engines/python/setup/djl_python/
lmi_vllm/vllm_async_service.py), 5b509c9 (lmi_vllm/request_response_utils.py
`vllm_stream_output_formatter`, `vllm_non_stream_output_formatter`), 129126b
(djl_python/async_utils.py `_create_output`) and 0971984 (engines/python/src/main/java/
ai/djl/python/engine/Request.java `addResponse`), over vLLM's chat serving (see
vllm_output.py). Quirks kept:
- non-stream: vLLM's `chat.completion` as `model_dump_json()` plus a newline;
- stream: `application/jsonlines`, one `chat.completion.chunk` per line with the SSE
  `data: ` prefix cut off; vLLM's `data: [DONE]` becomes an empty line, so the body
  ends `}\\n\\n` and never says [DONE]; the usage chunk comes as vLLM sends it;
- `model` defaults to LMI's served name "lmi" when the request has none;
- a request vLLM's `ChatCompletionRequest(**payload)` rejects is a 424 whose body the
  Java frontend writes with Gson from a ConcurrentHashMap: `{"error": "Input parsing
  failed: <pydantic's message>", "code": 424}`, "error" first, HTML characters
  (`<>&='`) escaped as \\u003c-style sequences."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response

from . import vllm_output
from .fake_container import FakeChatContainer
from .openai_wire import dumps
from .vllm_request import ChatCompletionRequest, plan

# Gson escapes these inside strings unless HTML escaping is disabled (DJL's is not).
_GSON_ESCAPES = {c: f"\\u{ord(c):04x}" for c in "<>&='\u2028\u2029"}


def gson_error(message: str, code: int) -> bytes:
    """The Java frontend's error body: `{"error": ..., "code": ...}` in Gson's format."""
    text = dumps({"error": message, "code": code})
    return "".join(_GSON_ESCAPES.get(c, c) for c in text).encode()


class LmiContainer(FakeChatContainer):
    served_model_name = "lmi"

    def __init__(self, delay: float = 0.0, *, reasoning: bool = False) -> None:
        super().__init__(delay)
        # As if OPTION_REASONING_PARSER were set.
        self.reasoning = reasoning

    def failure(self, message: str, code: int = 424) -> Response:
        return Response(gson_error(message, code), status_code=code, media_type="application/json")

    def parse(self, raw: bytes) -> ChatCompletionRequest | Response:
        """`VLLMHandler.preprocess_request` for a chat body; any error is a 424."""
        try:
            payload: Any = json.loads(raw)
            if "model" not in payload:
                payload["model"] = self.served_model_name
            if "messages" not in payload:
                if "prompt" in payload or "inputs" in payload:
                    # LMI maps these to vLLM completions; the echo fake serves chat only.
                    raise RuntimeError("the echo-lmi fake serves chat (`messages`) only")
                raise RuntimeError("invalid payload. must contain prompt, inputs, or messages")
            return ChatCompletionRequest(**payload)
        except (ValueError, TypeError, RuntimeError, ValidationError) as exc:
            return self.failure(f"Input parsing failed: {exc}")

    async def answer(self, raw: bytes) -> Response:
        request = self.parse(raw)
        if isinstance(request, Response):
            return request
        if request.model != self.served_model_name:
            # vLLM's 404 ErrorResponse through `vllm_non_stream_output_formatter`.
            return self.failure(vllm_output.model_not_found(str(request.model)), 404)
        answer = plan(request, reasoning_parser=self.reasoning)
        delay = self.pace(request.model_dump())
        if answer.stream:
            lines = (
                (f"{dumps(chunk)}\n".encode(), generated)
                for chunk, generated in vllm_output.chunks(answer, self.served_model_name)
            )
            return self.stream(lines, delay, b"\n", "application/jsonlines")
        await self.wait(delay, answer.completion_tokens)
        body = dumps(vllm_output.completion(answer, self.served_model_name))
        return Response(f"{body}\n", media_type="application/json")

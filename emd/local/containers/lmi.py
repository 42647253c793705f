"""A fake DJL LMI container (djl-inference, LMI >= v17 async mode with the vLLM backend)
for `echo-lmi/local`: the echo model (echo_model.py) behind LMI's framing.

Mimics deepjavalibrary/djl-serving at commits d21927c (engines/python/setup/djl_python/
lmi_vllm/vllm_async_service.py `preprocess_request`, python_async_engine.py
`invoke_handler`; engines/python/src/main/java/ai/djl/python/engine/
AsyncRequestManager.java), deepjavalibrary/djl af1d0b8 (api/.../modality/Output.java,
Input.java: the Gson fields), 071f3cc (engines/python/setup/djl_python/
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
- the body picks the path (`VLLMHandler.preprocess_request`): `prompt` first (vLLM's
  completions, see vllm_completion.py: `text_completion` JSON, or its chunks as JSON
  lines), then `inputs` (LMI's TGI schema: not served by this fake), then `messages`;
- a request vLLM's `ChatCompletionRequest(**payload)` or `CompletionRequest(**payload)`
  rejects is a 424 whose body the Java frontend writes with Gson from a
  ConcurrentHashMap: `{"error": "Input parsing failed: <pydantic's message>", "code":
  424}`, "error" first, HTML characters (`<>&='`) escaped as \\u003c-style sequences;
- an ErrorResponse vLLM returns (wrong `model`, `suffix`...) goes through
  `vllm_non_stream_output_formatter`, which looks for `.message`/`.code` that vLLM's
  ErrorResponse (`{error: ErrorInfo}`) no longer has: the client gets a 500 whose
  error is the model's repr, `error=ErrorInfo(message='...', type='...', param=None,
  code=404)` (djl-serving d08744c, 2025-12);
- an exception vLLM raises while serving (the sampling parameters, an empty prompt
  list, and, unstreamed, the engine's checks) escapes `inference`:
  python_async_engine.py answers `Output().error(...)` (424) and the Java
  AsyncRequestManager.sendErrorResponse drops its text, writing Gson of a new
  `Output(424, "Async Inference Failure service.invoke_handler_async() failure")`
  with no content type; streamed, the engine's checks are one error line (vLLM's
  `{"error": {...}}`) before the final empty line."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from . import echo_model, vllm_completion, vllm_completion_output, vllm_output
from .fake_container import FakeChatContainer
from .openai_wire import dumps
from .vllm_completion import CompletionRequest, ReturnedError, raised_error_info
from .vllm_context import context_error
from .vllm_request import ChatCompletionRequest, logprobs_limit_error, plan

# Gson escapes these inside strings unless HTML escaping is disabled (DJL's is not).
_GSON_ESCAPES = {c: f"\\u{ord(c):04x}" for c in "<>&='\u2028\u2029"}


def gson_error(message: str, code: int) -> bytes:
    """The Java frontend's error body: `{"error": ..., "code": ...}` in Gson's format."""
    text = dumps({"error": message, "code": code})
    return "".join(_GSON_ESCAPES.get(c, c) for c in text).encode()


# Gson of `new Output(424, "Async Inference Failure " + message)`: Output's fields, then
# Input's (a TreeMap of properties, a PairList of content, `cancelled`).
ASYNC_FAILURE = (
    b'{"code":424,"message":"Async Inference Failure service.invoke_handler_async() '
    b'failure","properties":{},"content":{"keys":[],"values":[]},"cancelled":false}'
)


class ErrorInfo(BaseModel):
    """vLLM's ErrorInfo, for its pydantic repr."""

    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo


def returned_error_text(err: ReturnedError) -> str:
    """`str(ErrorResponse)`: what `vllm_non_stream_output_formatter` reports."""
    return str(ErrorResponse(error=ErrorInfo(**err.info())))


class LmiContainer(FakeChatContainer):
    served_model_name = "lmi"

    def __init__(self, delay: float = 0.0, *, reasoning: bool = False) -> None:
        super().__init__(delay)
        # As if OPTION_REASONING_PARSER were set.
        self.reasoning = reasoning

    def failure(self, message: str, code: int = 424) -> Response:
        return Response(gson_error(message, code), status_code=code, media_type="application/json")

    def parse(self, raw: bytes) -> ChatCompletionRequest | CompletionRequest | Response:
        """`VLLMHandler.preprocess_request`; any error is a 424."""
        try:
            payload: Any = json.loads(raw)
            if "model" not in payload:
                payload["model"] = self.served_model_name
            if "prompt" in payload:
                return CompletionRequest(**payload)
            if "inputs" in payload:
                # LMI maps its TGI-style schema to vLLM completions; not faked here.
                raise RuntimeError("the echo-lmi fake serves `prompt` and `messages` bodies only")
            if "messages" in payload:
                return ChatCompletionRequest(**payload)
            raise RuntimeError("invalid payload. must contain prompt, inputs, or messages")
        except (ValueError, TypeError, RuntimeError, ValidationError) as exc:
            return self.failure(f"Input parsing failed: {exc}")

    def returned(self, err: ReturnedError) -> Response:
        return self.failure(returned_error_text(err), 500)

    @staticmethod
    def raised() -> Response:
        return Response(ASYNC_FAILURE, status_code=424)

    async def answer(self, raw: bytes) -> Response:
        request = self.parse(raw)
        if isinstance(request, Response):
            return request
        if isinstance(request, CompletionRequest):
            return await self.complete(request)
        if request.model != self.served_model_name:
            return self.returned(
                ReturnedError(vllm_output.model_not_found(str(request.model)), 404, "NotFoundError")
            )
        messages = [m.model_dump() for m in request.messages]
        overflow = context_error(
            echo_model.prompt_tokens(messages), request.model_dump(), echo_model.MAX_MODEL_LEN
        ) or logprobs_limit_error(request.model_dump())
        if overflow is not None:
            # vLLM returns it as an ErrorResponse, which LMI's formatter mangles.
            return self.returned(ReturnedError(str(overflow), 400, param=overflow.parameter))
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

    async def complete(self, request: CompletionRequest) -> Response:
        """vLLM's completions behind LMI's framing."""
        try:
            answer = vllm_completion.plan(request, self.served_model_name)
        except ReturnedError as err:
            return self.returned(err)
        except (ValueError, TypeError):
            return self.raised()
        delay = self.pace(request.model_dump())
        if answer.stream:
            if answer.engine_error is not None:
                event = json.dumps({"error": raised_error_info(answer.engine_error)})
                lines = iter([(f"{event}\n".encode(), False)])
            else:
                lines = (
                    (f"{dumps(chunk)}\n".encode(), generated)
                    for chunk, generated in vllm_completion_output.chunks(
                        answer, self.served_model_name
                    )
                )
            return self.stream(lines, delay, b"\n", "application/jsonlines")
        if answer.engine_error is not None:
            return self.raised()
        await self.wait(delay, max(a.completion_tokens for a in answer.answers))
        body = dumps(vllm_completion_output.completion(answer, self.served_model_name))
        return Response(f"{body}\n", media_type="application/json")

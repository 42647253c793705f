"""`echo/local`: an instant, deterministic chat model with the vLLM container contract
(the vLLM DLC's /invocations: vllm-project/vllm entrypoints/sagemaker/api_router.py).

The model (echo_model.py) streams the last user message back word by word (the joined
deltas equal the message), honours `max_tokens`/`max_completion_tokens` (one word is
one token; finish_reason "length") and `stop` (cut before the stop string; finish
"stop" with vLLM's `stop_reason`), calls tools, thinks (`echo_reasoning: true` or
`reasoning=True`), returns logprobs, `n` choices and JSON for `response_format`, and
accepts images (the answer says how many). Answers are framed exactly as vLLM frames
them (vllm_output.py); requests are validated as vLLM validates them
(vllm_request.py), and, as on vLLM's SageMaker route, a request that fails validation
gets the generic "Cannot find suitable handler" 400 rather than the reason.

The route tries a body as a ChatCompletionRequest first, then as a CompletionRequest
(api_router.py), so a body with `prompt` and no `messages` is a legacy completion:
vllm_completion.py validates and plans it, vllm_completion_output.py frames it. The
completion of a prompt is its last non-blank line said again (echo_model.prompt_echo),
word by word, within `max_tokens` (vLLM's default 16) and `stop`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from . import openai_wire as wire
from . import vllm_completion, vllm_completion_output, vllm_output
from .echo_model import MAX_MODEL_LEN, echo_answer, prompt_tokens, tokens
from .fake_container import FakeChatContainer
from .vllm_completion import CompletionRequest, ReturnedError, raised_error_info
from .vllm_context import context_error
from .vllm_request import ChatCompletionRequest, logprobs_limit_error, plan

__all__ = ["EchoContainer", "echo_answer", "tokens"]


class EchoContainer(FakeChatContainer):
    served_model_name = "echo"
    vllm_dlc = True

    def __init__(
        self, delay: float = 0.0, *, reasoning: bool = False, reasoning_field: str = "reasoning"
    ) -> None:
        super().__init__(delay)
        # As if started with --reasoning-parser: every answer thinks first.
        self.reasoning = reasoning
        self.reasoning_field = reasoning_field

    async def answer(self, raw: bytes) -> Response:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            # FastAPI's HTTPException(400, "JSON decode error: ...") through vLLM's
            # http_exception_handler, which puts the HTTP phrase in `type`.
            error = wire.error_body(400, f"JSON decode error: {exc}")
            error["error"]["type"] = "Bad Request"
            return JSONResponse(error, status_code=400)
        try:
            request = ChatCompletionRequest.model_validate(body)
        except ValidationError:
            try:
                completion = CompletionRequest.model_validate(body)
            except ValidationError:
                return wire.error(400, vllm_output.NO_HANDLER)
            return await self.complete(completion, body)
        if request.model is not None and request.model != self.served_model_name:
            return wire.error(404, vllm_output.model_not_found(request.model), "model")
        overflow = context_error(
            prompt_tokens(body["messages"]), body, MAX_MODEL_LEN
        ) or logprobs_limit_error(body)
        if overflow is not None:
            return JSONResponse({"error": raised_error_info(overflow)}, status_code=400)
        answer = plan(request, reasoning_parser=self.reasoning)
        delay = self.pace(body)
        if answer.stream:
            frames = (
                (wire.sse(chunk), generated)
                for chunk, generated in vllm_output.chunks(
                    answer, self.served_model_name, self.reasoning_field
                )
            )
            return self.stream(frames, delay, wire.SSE_DONE, "text/event-stream")
        await self.wait(delay, answer.completion_tokens)
        return JSONResponse(
            vllm_output.completion(answer, self.served_model_name, self.reasoning_field)
        )

    async def complete(self, request: CompletionRequest, body: Any) -> Response:
        """A legacy completion, answered (or refused) where vLLM answers it."""
        try:
            answer = vllm_completion.plan(request, self.served_model_name)
        except ReturnedError as err:
            return JSONResponse({"error": err.info()}, status_code=err.status)
        except (ValueError, TypeError) as exc:
            # Raised before the response starts: vLLM's exception handler, a 400.
            return JSONResponse({"error": raised_error_info(exc)}, status_code=400)
        delay = self.pace(body)
        if answer.stream:
            if answer.engine_error is not None:
                # The engine refuses once the stream has started: one error event
                # (json.dumps, default separators), then [DONE].
                event = json.dumps({"error": raised_error_info(answer.engine_error)})
                frames = iter([(f"data: {event}\n\n".encode(), False)])
            else:
                frames = (
                    (wire.sse(chunk), generated)
                    for chunk, generated in vllm_completion_output.chunks(
                        answer, self.served_model_name
                    )
                )
            return self.stream(frames, delay, wire.SSE_DONE, "text/event-stream")
        if answer.engine_error is not None:
            return JSONResponse({"error": raised_error_info(answer.engine_error)}, status_code=400)
        await self.wait(delay, max(a.completion_tokens for a in answer.answers))
        return JSONResponse(vllm_completion_output.completion(answer, self.served_model_name))

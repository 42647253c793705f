"""The chat engines' shared request preparation; each engine adds its hooks.

Hooks: `prepare` (the OpenAI chat body -> what this container accepts),
`prepare_completion` (the same for a legacy completion body: every chat engine serves
`prompt` requests natively at /invocations), `fixer` (a per-stream `StreamFixer`
repairing engine chunks before the shared normalisation) and `fix_answer` (the same
repairs on a whole non-stream answer). All are pure; reading the stream is the
pipeline's (streaming.py).

A streamed request streams from the engine (`call`). A non-stream one is either one
plain invoke (`plain_call`: the engine's own non-stream answer, with the fields only
that path has, such as vLLM's `prompt_logprobs`) or, when the answer might outrun
SageMaker's 60 s InvokeEndpoint limit, streamed and folded (generation.py decides).
"""

from __future__ import annotations

from typing import Any

from ..chunks import StreamFixer
from ..errors import InvalidRequestError
from ..jsonio import dumps
from ..registry import RegistryEntry
from ..sagemaker_client import UpstreamCall
from ..schemas.chat import ChatCompletionRequest
from ..schemas.completions import CompletionRequest
from ..schemas.content_parts import unsupported_part


class ChatEngine:
    name: str = "base"
    content_type: str = "application/json"

    # --- hooks -------------------------------------------------------------------
    def prepare(self, body: dict[str, Any], entry: RegistryEntry) -> dict[str, Any]:
        return body

    def prepare_completion(self, body: dict[str, Any], entry: RegistryEntry) -> dict[str, Any]:
        return body

    def fixer(self, request: ChatCompletionRequest | CompletionRequest) -> StreamFixer:
        return StreamFixer()

    def fix_answer(
        self, answer: dict[str, Any], request: ChatCompletionRequest | CompletionRequest
    ) -> dict[str, Any]:
        return answer

    # --- shared ------------------------------------------------------------------
    def build_payload(self, request: ChatCompletionRequest, entry: RegistryEntry) -> bytes:
        check_features(request, entry)
        prompt_logprobs = (request.model_extra or {}).get("prompt_logprobs")
        if isinstance(prompt_logprobs, int) and (prompt_logprobs > 0 or prompt_logprobs == -1):
            # A streamed request (a non-stream one asking for them is a plain invoke):
            # vLLM's own refusal, which its SageMaker router would hide behind "Cannot
            # find suitable handler".
            raise InvalidRequestError(
                "`prompt_logprobs` are not available when `stream=True`.",
                param="prompt_logprobs",
            )
        return dumps(self.prepare(_streamed_body(request, entry), entry))

    def call(self, request: ChatCompletionRequest, entry: RegistryEntry) -> UpstreamCall:
        return UpstreamCall(self.build_payload(request, entry), self.content_type)

    def plain_call(self, request: ChatCompletionRequest, entry: RegistryEntry) -> UpstreamCall:
        """The request as one non-stream invoke: the client's fields over the catalog's
        defaults, as the client sent them."""
        check_features(request, entry)
        return UpstreamCall(
            dumps(self.prepare(_plain_body(request, entry), entry)), self.content_type
        )

    def completion_call(self, request: CompletionRequest, entry: RegistryEntry) -> UpstreamCall:
        _check_suffix(request, entry)
        body = self.prepare_completion(_streamed_body(request, entry), entry)
        return UpstreamCall(dumps(body), self.content_type)

    def plain_completion_call(
        self, request: CompletionRequest, entry: RegistryEntry
    ) -> UpstreamCall:
        """A legacy completion as one non-stream invoke."""
        _check_suffix(request, entry)
        body = self.prepare_completion(_plain_body(request, entry), entry)
        return UpstreamCall(dumps(body), self.content_type)


def _check_suffix(request: CompletionRequest, entry: RegistryEntry) -> None:
    if request.suffix is not None:
        # No engine inserts text (vLLM and TGI both refuse it): say so plainly.
        raise InvalidRequestError(
            f"The model `{entry.id}` does not support `suffix`; put the text in the "
            "prompt instead.",
            param="suffix",
        )


def _body(
    request: ChatCompletionRequest | CompletionRequest, entry: RegistryEntry
) -> dict[str, Any]:
    """The client's fields over the catalog's defaults."""
    body: dict[str, Any] = {**entry.defaults, **request.model_dump(exclude_unset=True)}
    # The served name inside the container is not the public id; the engines accept a
    # request without `model`.
    body.pop("model", None)
    return body


def _streamed_body(
    request: ChatCompletionRequest | CompletionRequest, entry: RegistryEntry
) -> dict[str, Any]:
    """The body streamed from the engine with usage (recorded per key; stripped unless
    the client asked)."""
    body = _body(request, entry)
    body["stream"] = True
    body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return body


def check_features(request: ChatCompletionRequest, entry: RegistryEntry) -> None:
    """Refuse what the model cannot do with a clear 400, instead of an engine error or
    (worse) an answer that silently ignored half the request."""
    if request.tools and not entry.features.tools:
        raise InvalidRequestError(f"The model `{entry.id}` does not support tools.", param="tools")
    for m, message in enumerate(request.messages):
        if isinstance(message.content, list):
            for p, part in enumerate(message.content):
                why = unsupported_part(part.type, entry.features)
                if why is not None:
                    raise InvalidRequestError(
                        f"The model `{entry.id}` {why}", param=f"messages.{m}.content.{p}"
                    )


def _plain_body(
    request: ChatCompletionRequest | CompletionRequest, entry: RegistryEntry
) -> dict[str, Any]:
    """The body of one non-stream invoke (engines refuse `stream_options` on it)."""
    body = _body(request, entry)
    body["stream"] = False
    body.pop("stream_options", None)
    return body

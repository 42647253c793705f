"""The chat engines' shared request preparation; each engine adds its hooks.

Hooks: `prepare` (the OpenAI body -> what this container accepts) and `fixer` (a
per-stream `StreamFixer` repairing engine chunks before the shared normalisation).
Both are pure; reading the stream is the pipeline's (streaming.py).

Every chat request streams from the engine, also when the client did not ask for a
stream: the answer is then folded into one `chat.completion`. That is one code path
for both, and it lifts SageMaker's 60 s InvokeEndpoint limit on long answers.
"""

from __future__ import annotations

from typing import Any

from ..chunks import StreamFixer
from ..errors import InvalidRequestError
from ..jsonio import dumps
from ..registry import RegistryEntry
from ..sagemaker_client import UpstreamCall
from ..schemas.chat import ChatCompletionRequest


class ChatEngine:
    name: str = "base"
    content_type: str = "application/json"

    # --- hooks -------------------------------------------------------------------
    def prepare(self, body: dict[str, Any], entry: RegistryEntry) -> dict[str, Any]:
        return body

    def fixer(self, request: ChatCompletionRequest) -> StreamFixer:
        return StreamFixer()

    # --- shared ------------------------------------------------------------------
    def build_payload(self, request: ChatCompletionRequest, entry: RegistryEntry) -> bytes:
        check_features(request, entry)
        body: dict[str, Any] = {**entry.defaults, **request.model_dump(exclude_unset=True)}
        # The served name inside the container is not the public id; the engines
        # accept a request without `model`.
        body.pop("model", None)
        body["stream"] = True
        # Always ask for usage (recorded per key); stripped unless the client asked.
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return dumps(self.prepare(body, entry))

    def call(self, request: ChatCompletionRequest, entry: RegistryEntry) -> UpstreamCall:
        return UpstreamCall(self.build_payload(request, entry), self.content_type)


def check_features(request: ChatCompletionRequest, entry: RegistryEntry) -> None:
    """Refuse what the model cannot do with a clear 400, instead of an engine error or
    (worse) an answer that silently ignored half the request."""
    if request.tools and not entry.features.tools:
        raise InvalidRequestError(f"The model `{entry.id}` does not support tools.", param="tools")
    if entry.features.vision:
        return
    for m, message in enumerate(request.messages):
        if isinstance(message.content, list):
            for p, part in enumerate(message.content):
                if part.type in ("image_url", "input_image"):
                    raise InvalidRequestError(
                        f"The model `{entry.id}` does not accept images.",
                        param=f"messages.{m}.content.{p}",
                    )

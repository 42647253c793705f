"""LlamaIndex's OpenAILike as a user configures it for a self-hosted OpenAI-compatible
server, run in its own venv (tests/.venvs/llamaindex: LlamaIndex pins openai<3, the
project's tests pin openai 3). Prints one JSON object, by model, with what each call
gave back; tests/integration/test_llamaindex.py checks it.

Usage: python llamaindex_client.py BASE_URL API_KEY MODEL [MODEL ...]"""

from __future__ import annotations

import asyncio
import json
import sys

from llama_index.core.llms import ChatMessage
from llama_index.llms.openai_like import OpenAILike

PROMPT = "Write one line.\nhello completion world"


def calls(base_url: str, api_key: str, model: str) -> dict[str, object]:
    def llm(is_chat_model: bool) -> OpenAILike:
        return OpenAILike(
            model=model,
            api_base=base_url,
            api_key=api_key,
            is_chat_model=is_chat_model,
            context_window=2048,
            max_tokens=20,
            max_retries=0,
        )

    legacy = llm(is_chat_model=False)  # /v1/completions
    chat = llm(is_chat_model=True)  # /v1/chat/completions
    completed = legacy.complete(PROMPT)
    streamed = [r.delta for r in legacy.stream_complete(PROMPT)]
    answered = chat.chat([ChatMessage(role="user", content="The weather in Paris is sunny")])
    astreamed = asyncio.run(_astream(legacy))
    return {
        "complete": completed.text,
        "stream_complete": streamed,
        "astream_complete": astreamed,
        "chat": answered.message.content,
    }


async def _astream(llm: OpenAILike) -> list[str | None]:
    return [r.delta async for r in await llm.astream_complete(PROMPT)]


if __name__ == "__main__":
    base_url, api_key, *models = sys.argv[1:]
    print(json.dumps({model: calls(base_url, api_key, model) for model in models}))

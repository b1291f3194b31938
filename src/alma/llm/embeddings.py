"""Embedders: ``hash`` (deterministic, instant, for tests) and OpenAI's embedding models."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from alma.llm.retry import BackoffPolicy
from alma.llm.tokens import approx_tokens

if TYPE_CHECKING:  # the endpoint module loads the openai SDK: only when an OpenAI embedder is made
    from alma.llm.endpoint import Failure

_TOKEN = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Feature hashing of words and word pairs into ``dim`` signed buckets, L2-normalised.

    Texts sharing words get similar vectors, which is enough for retrieval tests; it knows
    nothing of meaning.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.model = "hash"

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        words = _TOKEN.findall(text.lower())
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dim
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            vector[0] = 1.0
            return vector
        return vector / norm

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(text) for text in texts])


class OpenAIEmbedder:
    """An OpenAI-compatible ``/embeddings`` endpoint; reports real token usage.

    Requests go through alma's retry policy (``alma.llm.endpoint``), not the SDK's: 429, 5xx,
    timeouts, dropped connections and malformed bodies are retried with backoff, each retry told
    to the call hooks (the ledger records it), and the last failure is one ``LLMError``. Where the
    endpoint reports no usage, tokens are estimated from the texts (about 4 characters a token).
    """

    DIMS: ClassVar[dict[str, int]] = {
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
    }

    def __init__(
        self,
        model: str,
        *,
        client: Any,
        dim: int | None = None,
        batch_size: int = 256,
        max_retries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> None:
        from alma.llm.endpoint import RetryingEndpoint

        self.model = model
        self.dim = dim or self.DIMS.get(model, 1536)
        self.client = client.with_options(max_retries=0)  # alma retries, and records each retry
        self.batch_size = batch_size
        timeout = getattr(client, "timeout", None)
        self._requests = RetryingEndpoint(
            f"embedding model {model!r}",
            str(client.base_url).rstrip("/"),
            timeout if isinstance(timeout, int | float) else 60.0,
            max_retries,
            BackoffPolicy(base_s=backoff_base_s, max_s=backoff_max_s),
        )

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors, _, _ = await self.embed_counted(texts)
        return vectors

    async def embed_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int, bool]:
        """Vectors, tokens used, and whether the token count is an estimate."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), 0, False
        rows: list[list[float]] = []
        tokens = 0
        estimated = False
        for start in range(0, len(texts), self.batch_size):
            batch = [text or " " for text in texts[start : start + self.batch_size]]
            vectors, used = await self._batch(batch)
            rows.extend(vectors)
            if used is None:
                estimated = True
                used = sum(approx_tokens(text) for text in batch)
            tokens += used
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1.0, norms), tokens, estimated

    async def _batch(self, batch: list[str]) -> tuple[list[list[float]], int | None]:
        async def send() -> bytes:
            response = await self.client.embeddings.with_raw_response.create(
                model=self.model, input=batch, encoding_format="float"
            )
            content: bytes = response.content
            return content

        def read(raw: bytes) -> tuple[list[list[float]], int | None] | Failure:
            return read_embeddings_body(raw, len(batch))

        return await self._requests.request(send, read)


def read_embeddings_body(raw: bytes, count: int) -> tuple[list[list[float]], int | None] | Failure:
    """The ``count`` vectors (in input order) and prompt tokens of a 200 ``/embeddings`` body."""
    from alma.llm.endpoint import malformed

    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        return malformed(f"not JSON ({error})")
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != count:
        return malformed(f"expected a 'data' list of {count} embeddings")
    vectors: list[list[float]] = [[] for _ in range(count)]
    for position, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("embedding"), list):
            return malformed("an item of 'data' has no 'embedding' list")
        index = item.get("index", position)
        if not isinstance(index, int) or not 0 <= index < count or vectors[index]:
            return malformed("the 'index' fields of 'data' do not number the inputs")
        vectors[index] = item["embedding"]
    if len({len(vector) for vector in vectors}) != 1:
        return malformed("embeddings of different lengths")
    usage = body.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    valid = isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0
    return vectors, tokens if valid else None

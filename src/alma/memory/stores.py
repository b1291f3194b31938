"""Stores a memory design can keep its data in: vectors, key-value, graph.

All are plain Python data (numpy arrays, dicts, networkx graphs): picklable, so a built memory
can be copied, and shippable across the sandbox boundary.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Hit:
    id: int
    score: float  # cosine similarity, in [-1, 1]
    item: dict[str, Any]


def _matches(item: dict[str, Any], where: dict[str, Any]) -> bool:
    return all(item.get(key) == value for key, value in where.items())


def unit_vector(vector: np.ndarray, dim: int | None, what: str = "vector") -> np.ndarray:
    """``vector`` flat, float32 and of length 1 (a zero vector stays zero); a store holding
    ``dim``-dimensional vectors refuses any other size."""
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if dim is not None and vec.shape[0] != dim:
        raise ValueError(f"{what} has {vec.shape[0]} dimensions, the store holds {dim}")
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


class VectorStore:
    """Exact cosine search over L2-normalised vectors, with a metadata dict per vector.

    ``add`` returns an id; ``search`` returns the top ``k`` hits best first, optionally only
    among items whose metadata equals every ``where`` entry; ``delete`` removes by id.
    Vectors are normalised on insert, so scores are cosine similarities.
    """

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim
        self._matrix = np.zeros((0, dim or 0), dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self._items: list[dict[str, Any] | None] = []
        self._count = 0  # rows in use (alive or deleted)
        self._size = 0  # alive rows

    def __len__(self) -> int:
        return self._size

    def _grow(self, need: int) -> None:
        capacity = self._matrix.shape[0]
        if need <= capacity:
            return
        new_capacity = max(need, capacity * 2, 64)
        matrix = np.zeros((new_capacity, self._matrix.shape[1]), dtype=np.float32)
        matrix[: self._count] = self._matrix[: self._count]
        alive = np.zeros(new_capacity, dtype=bool)
        alive[: self._count] = self._alive[: self._count]
        self._matrix, self._alive = matrix, alive

    def add(self, vector: np.ndarray, item: dict[str, Any] | None = None) -> int:
        fresh = self.dim is None or self._matrix.shape[1] == 0
        vec = unit_vector(vector, None if fresh else self.dim)
        if fresh:
            self.dim = vec.shape[0]
            self._matrix = np.zeros((0, self.dim), dtype=np.float32)
        self._grow(self._count + 1)
        index = self._count
        self._matrix[index] = vec
        self._alive[index] = True
        self._items.append(dict(item or {}))
        self._count += 1
        self._size += 1
        return index

    def get(self, id: int) -> dict[str, Any] | None:
        if 0 <= id < self._count and self._alive[id]:
            return self._items[id]
        return None

    def vector(self, id: int) -> np.ndarray | None:
        """The stored (normalised) vector of ``id``, or None if there is none."""
        if 0 <= id < self._count and self._alive[id]:
            row: np.ndarray = self._matrix[id].copy()
            return row
        return None

    def delete(self, id: int) -> bool:
        if 0 <= id < self._count and self._alive[id]:
            self._alive[id] = False
            self._items[id] = None
            self._size -= 1
            return True
        return False

    def items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for index in range(self._count):
            item = self._items[index]
            if item is not None:
                yield index, item

    def search(
        self, vector: np.ndarray, k: int = 5, where: dict[str, Any] | None = None
    ) -> list[Hit]:
        if self._size == 0 or k <= 0:
            return []
        query = unit_vector(vector, self.dim, "query")
        # einsum, not BLAS: a multithreaded BLAS matrix-vector product on a busy machine can be
        # ten times slower than this single-threaded loop
        scores = np.einsum("ij,j->i", self._matrix[: self._count], query)
        scores = np.where(self._alive[: self._count], scores, -np.inf)
        window = min(self._count, k if not where else max(4 * k, 64))
        while True:
            hits = []
            for index in self._ranked(scores, window):
                item = self._items[index]
                if item is not None and (not where or _matches(item, where)):
                    hits.append(Hit(index, float(scores[index]), item))
                    if len(hits) == k:
                        return hits
            if window >= self._count:
                return hits
            window = min(self._count, window * 4)  # too few passed the filter: look deeper

    @staticmethod
    def _ranked(scores: np.ndarray, window: int) -> list[int]:
        """Indices of the ``window`` best scores, best first (deleted rows score -inf)."""
        if window < len(scores):
            candidates = np.argpartition(-scores, window - 1)[:window]
        else:
            candidates = np.arange(len(scores))
        ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [int(index) for index in ranked if np.isfinite(scores[index])]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_matrix"] = self._matrix[: self._count].copy()
        state["_alive"] = self._alive[: self._count].copy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class KVStore:
    """A dict with a few conveniences; values should be JSON-able."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self._data.get(key, default))

    def set(self, key: str, value: Any) -> None:
        self._data[key] = copy.deepcopy(value)

    def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def keys(self) -> list[str]:
        return list(self._data)

    def items(self) -> list[tuple[str, Any]]:
        return [(key, copy.deepcopy(value)) for key, value in self._data.items()]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

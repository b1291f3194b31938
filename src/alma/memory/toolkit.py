"""The toolkit: everything a memory design may use, one per memory instance.

- ``await toolkit.llm(prompt, system=..., schema=...)``: the memory model (metered as purpose
  ``memory``); returns text, or a validated object when ``schema`` is a pydantic model, or a
  dict when it is a JSON schema dict;
- ``await toolkit.embed(texts)``: L2-normalised float32 vectors, shape (n, dim) (a single
  string gives shape (dim,));
- ``toolkit.vectors(name)``, ``toolkit.kv(name)``, ``toolkit.graph(name)``: named stores,
  created on first use (exact-cosine vector store, dict store, networkx ``DiGraph``); the
  vector stores are numpy-backed, or faiss-backed with ``vector_backend="faiss"`` (same API and
  results, faster search; needs the ``faiss`` extra);
- ``toolkit.rng``: a ``random.Random`` seeded per instance.

Model and embedding calls go through ``services``, which the harness binds: in-process it is the
run's metered models; in the sandbox it forwards to the parent. Pickling a toolkit keeps the
stores and the rng state but not the services, which the harness binds again after a copy.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import BaseModel, create_model

from alma.errors import AlmaError, ConfigError
from alma.llm.base import LLM, Embedder
from alma.memory.stores import KVStore, VectorStore
from alma.types import Completion, Message

if TYPE_CHECKING:
    import networkx as nx

VECTOR_BACKENDS = ("numpy", "faiss")


class Services(Protocol):
    """Where a toolkit's model and embedding calls go."""

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion: ...

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class UnboundToolkitError(AlmaError):
    """A design used llm / embed on a toolkit with no services bound."""


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "object": dict[str, Any],
}


def model_from_json_schema(schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model for a flat JSON object schema (nested values are kept as plain data)."""
    properties = schema.get("properties", {})
    required = set(schema.get("required", list(properties)))
    fields: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type", "string")
        if kind == "array":
            item_kind = spec.get("items", {}).get("type")
            item_type = _JSON_TYPES.get(item_kind, Any) if item_kind else Any
            annotation: Any = list.__class_getitem__(item_type)
        else:
            annotation = _JSON_TYPES.get(kind, Any)
        fields[name] = (annotation, ...) if name in required else (annotation | None, None)
    model: type[BaseModel] = create_model(str(schema.get("title", "Answer")), **fields)
    return model


class MemoryLLM:
    """``await toolkit.llm(prompt, system=..., schema=..., temperature=..., max_tokens=...)``."""

    def __init__(self, toolkit: Toolkit) -> None:
        self._toolkit = toolkit

    async def __call__(
        self,
        prompt: str,
        *,
        system: str | None = None,
        schema: type[BaseModel] | dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Any:
        messages = [Message("system", system)] if system else []
        messages.append(Message("user", prompt))
        model = model_from_json_schema(schema) if isinstance(schema, dict) else schema
        completion = await self._toolkit.services.complete(
            messages, schema=model, temperature=temperature, max_tokens=max_tokens
        )
        if model is None:
            return completion.text
        if isinstance(schema, dict):
            assert completion.parsed is not None
            return completion.parsed.model_dump()
        return completion.parsed


class Toolkit:
    def __init__(
        self, services: Services | None = None, *, seed: int = 0, vector_backend: str = "numpy"
    ) -> None:
        if vector_backend not in VECTOR_BACKENDS:
            raise ConfigError(
                f"unknown vector backend {vector_backend!r}",
                hint="use one of: " + ", ".join(VECTOR_BACKENDS),
            )
        self._services = services
        self.rng = random.Random(seed)
        self.llm = MemoryLLM(self)
        self._vector_backend = vector_backend
        self._vectors: dict[str, VectorStore] = {}
        self._kv: dict[str, KVStore] = {}
        self._graphs: dict[str, nx.DiGraph] = {}

    # ------------------------------------------------------------------ services
    @property
    def services(self) -> Services:
        if self._services is None:
            raise UnboundToolkitError(
                "this toolkit has no model services bound",
                hint="the harness binds them; in your own code pass services= to Toolkit",
            )
        return self._services

    def bind(self, services: Services | None) -> None:
        self._services = services

    async def embed(self, texts: str | Sequence[str]) -> np.ndarray:
        batch = [texts] if isinstance(texts, str) else list(texts)
        vectors: np.ndarray = np.asarray(await self.services.embed(batch), dtype=np.float32)
        return vectors[0] if isinstance(texts, str) else vectors

    # ------------------------------------------------------------------ stores
    def vectors(self, name: str = "default") -> VectorStore:
        if name not in self._vectors:
            if self._vector_backend == "faiss":
                # imported on first use: faiss is an optional extra (MissingDependencyError)
                from alma.memory.faiss_store import FaissVectorStore

                self._vectors[name] = FaissVectorStore()
            else:
                self._vectors[name] = VectorStore()
        return self._vectors[name]

    def kv(self, name: str = "default") -> KVStore:
        return self._kv.setdefault(name, KVStore())

    def graph(self, name: str = "default") -> nx.DiGraph:
        if name not in self._graphs:
            import networkx as nx  # imported on first use: it is slow to import

            self._graphs[name] = nx.DiGraph()
        return self._graphs[name]

    # ------------------------------------------------------------------ copying
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_services"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class ModelServices:
    """Services backed by the run's (metered) models, for designs run in this process (the
    runner wraps them in :class:`alma.memory.runner.BudgetWatch`, so a design that catches
    the end of the budget still stops the run)."""

    def __init__(self, llm: LLM, embedder: Embedder) -> None:
        self.llm = llm
        self.embedder = embedder

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        return await self.llm.complete(
            messages, schema=schema, temperature=temperature, max_tokens=max_tokens
        )

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await self.embedder.embed(texts)

"""The original system's model helpers, ``Agent`` and ``Embedding``, routed to alma's toolkit.

The original's helpers call the OpenAI API themselves; here every call goes to the toolkit of the
memory that is running (its memory model and embedder, metered and budgeted like any design call;
in the sandbox they travel to the parent). The model name a design passes is kept but not used:
the run's memory model answers. Which toolkit is "running" is set by the adapter around each
call (:func:`bound`), so helpers that designs create anywhere (even inside ``general_update``)
find it, and pickling them keeps nothing but their own fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from alma.errors import AlmaError, MalformedOutputError
from alma.memory.toolkit import Toolkit, model_from_json_schema
from alma.types import Message

T = TypeVar("T")

EMPTY_ANSWER = "Error occur when generating answer."


class UnmappedCallError(AlmaError):
    """An original-format design used a part of the original's interface alma does not map."""


@dataclass(frozen=True)
class Binding:
    toolkit: Toolkit
    loop: asyncio.AbstractEventLoop
    thread: int


_BINDING: ContextVar[Binding | None] = ContextVar("alma_original_binding", default=None)


@contextlib.contextmanager
def bound(toolkit: Toolkit) -> Iterator[None]:
    """Route the helpers' calls made in this context (and tasks or threads it starts) to
    ``toolkit``."""
    binding = Binding(toolkit, asyncio.get_running_loop(), threading.get_ident())
    token = _BINDING.set(binding)
    try:
        yield
    finally:
        _BINDING.reset(token)


def current() -> Binding:
    binding = _BINDING.get()
    if binding is None:
        raise UnmappedCallError(
            "the original's Agent / Embedding were called outside general_retrieve, "
            "general_update or the design's __init__",
            hint="alma serves model calls only while the memory is being built or asked",
        )
    return binding


def run_blocking(make: Coroutine[Any, Any, T]) -> T:
    """Run a toolkit coroutine from synchronous code, which must be in a worker thread (e.g.
    ``asyncio.to_thread``): the event loop itself cannot wait for its own work."""
    binding = current()
    if threading.get_ident() == binding.thread:
        make.close()
        raise UnmappedCallError(
            "a synchronous embedding call (Embedding(...) / embed_query / embed_documents) was "
            "made on the event loop",
            hint="use `await Embedding().get_batch_embeddings(texts)`, or call it through "
            "asyncio.to_thread",
        )
    return asyncio.run_coroutine_threadsafe(make, binding.loop).result()


class Agent:
    """A chat with the memory model: a system prompt, a history, an optional JSON schema."""

    def __init__(
        self,
        system_prompt: str,
        output_schema: dict[str, Any] | None = None,
        model: str | None = "gpt-4.1",
    ) -> None:
        self.model = model
        schema_text = (
            "ONLY output a valid JSON object conforming to the schema. The json schema is given "
            f"below: {json.dumps(output_schema, ensure_ascii=False, indent=1)}"
            if output_schema
            else ""
        )
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": system_prompt + schema_text}
        ]
        self.output_schema = output_schema or None

    def get_agent_config(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "system_prompt": self.messages[0],
            "history": list(self.messages[1:]),
        }

    async def ask(
        self,
        user_input: Any,
        with_full_msg: bool = False,
        with_history: bool = False,
        temperature: float | None = None,
        reasoning_effort: str | None = None,
    ) -> Any:
        """The model's answer: text, or the parsed JSON object when a schema was given (a dict
        with ``error`` and ``raw_output`` when the answer does not parse, as in the original)."""
        del reasoning_effort  # the run's model settings decide
        self.messages.append({"role": "user", "content": user_input})
        if with_full_msg:
            chat = list(user_input)
        elif with_history:
            chat = list(self.messages)
        else:
            chat = [self.messages[0], self.messages[-1]]
        messages = [Message(m["role"], str(m["content"])) for m in chat]
        services = current().toolkit.services
        schema = None
        if self.output_schema and self.output_schema.get("type", "object") == "object":
            schema = model_from_json_schema(self.output_schema)
        try:
            completion = await services.complete(
                messages, schema=schema, temperature=temperature or None
            )
        except MalformedOutputError as error:
            return {"error": f"Output does not match schema: {error}", "raw_output": ""}
        answer = completion.text if completion.text.strip() else EMPTY_ANSWER
        self.messages.append({"role": "assistant", "content": answer})
        if not self.output_schema:
            return answer
        if completion.parsed is not None:
            return completion.parsed.model_dump()
        try:
            parsed: Any = json.loads(answer)
        except json.JSONDecodeError:
            return {"error": "Model output is not valid JSON.", "raw_output": answer}
        return parsed


class Embedding:
    """Embeddings from the run's embedder, as plain lists of floats; cosine similarities."""

    def __init__(
        self, model: str = "text-embedding-3-small", retries: int = 3, retry_delay: float = 1.0
    ) -> None:
        self.model = model
        self.retries = retries
        self.retry_delay = retry_delay

    async def get_embedding(self, text: str) -> list[float]:
        vector = await current().toolkit.embed(str(text))
        return [float(x) for x in vector]

    async def get_batch_embeddings(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = await current().toolkit.embed([str(t) for t in texts])
        return [[float(x) for x in row] for row in vectors]

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return run_blocking(self.get_batch_embeddings(texts))

    def embed_query(self, text: str) -> list[float]:
        return self([text])[0]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self(texts)

    @staticmethod
    async def compute_similarity(
        emb1: Sequence[float], emb2: Sequence[float], metric: str = "cosine"
    ) -> float:
        """Cosine similarity (1 - cosine distance; 0 for a zero vector)."""
        if metric != "cosine":
            raise ValueError(f"Unsupported similarity metric: {metric}")
        a = np.asarray(emb1, dtype=np.float64)
        b = np.asarray(emb2, dtype=np.float64)
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        return float(a @ b) / norms if norms else 0.0

    @staticmethod
    async def compute_one_to_group_similarity(
        emb: Sequence[float], group_emb: Sequence[Sequence[float]], metric: str = "cosine"
    ) -> list[float]:
        return [await Embedding.compute_similarity(emb, other, metric) for other in group_emb]

"""The model contracts every provider implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

from alma.types import Completion, Message


@runtime_checkable
class LLM(Protocol):
    """A chat model. ``schema`` asks for a validated object in ``Completion.parsed``."""

    model: str

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion: ...


@runtime_checkable
class Embedder(Protocol):
    """Texts to L2-normalised float32 vectors of shape (n, dim)."""

    model: str
    dim: int

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...

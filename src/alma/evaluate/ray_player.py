"""The node side of the Ray executor: a player process that plays episode jobs.

A :class:`Player` is a Ray actor on a node that plays many episodes at once on its event loop,
as the local executor does in the driver. It rebuilds what an episode needs from the run's
settings, which the driver puts in Ray's object store once per evaluation: the domain (by name
and its ``[domains.NAME]`` options) and the acting agent on its model, built by the node's own
model factory, so model calls go from the node to the endpoint.

Each episode gets its own :class:`JournalLedger`, which prices its calls as the driver's ledger
would and keeps every one (:class:`~alma.evaluate.ray_budget.CallEntry`); the journal comes back
with the episode and the driver records it, so the driver stays the only writer of the run.
Every call asks the cluster's budget first (:class:`ClusterLLM`), and a deploy episode asks its
memory through the retrieve relay (see :mod:`alma.evaluate.ray_relay`).

Plain Python here; :mod:`alma.evaluate.ray_executor` makes :class:`Player` a Ray actor.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from alma.agent.actor import Actor
from alma.config import AlmaConfig
from alma.domains.base import Domain
from alma.domains.registry import configured_domain
from alma.errors import BudgetExceededError
from alma.evaluate.jobs import EpisodeJob
from alma.evaluate.ray_budget import CallEntry
from alma.llm.base import LLM
from alma.llm.factory import ModelFactory, parse_model_spec
from alma.llm.ledger import RETRY, Ledger
from alma.llm.prices import PriceTable
from alma.types import Completion, Episode, EpisodeStart, Message, Purpose, Usage

BUDGET_HINT = "raise --budget-usd / --budget-tokens and resume the run"


class JournalLedger(Ledger):
    """A node's ledger for one episode: prices each call and keeps it to send back; it refuses
    calls once the cluster's budget has said no (:attr:`refusal`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.journal: list[CallEntry] = []
        self.unsent: list[CallEntry] = []  # not yet reported to the cluster's budget
        self.refusal: str | None = None

    def exhausted(self) -> str | None:
        return self.refusal

    def _keep(self, entry: CallEntry) -> None:
        self.journal.append(entry)
        self.unsent.append(entry)

    def take_unsent(self) -> list[CallEntry]:
        taken, self.unsent = self.unsent, []
        return taken

    def record(
        self,
        *,
        purpose: Purpose,
        model: str,
        usage: Usage,
        latency_s: float,
        from_cache: bool = False,
        kind: str = "chat",
        error: str | None = None,
        scope: str = "",
        estimated: bool = False,
    ) -> float:
        cost = super().record(
            purpose=purpose,
            model=model,
            usage=usage,
            latency_s=latency_s,
            from_cache=from_cache,
            kind=kind,
            error=error,
            scope=scope,
            estimated=estimated,
        )
        self._keep(
            CallEntry(purpose, model, kind, usage, latency_s, cost, from_cache, error, estimated)
        )
        return cost

    def record_retry(self, *, purpose: Purpose, model: str, cause: str, scope: str = "") -> None:
        super().record_retry(purpose=purpose, model=model, cause=cause, scope=scope)
        self._keep(CallEntry(purpose, model, RETRY, Usage(), 0.0, 0.0, error=cause))


class ClusterLLM:
    """A node's model: each call first asks the cluster's budget (and, for a remote endpoint,
    takes one of its slots); after it, the slot goes back with the calls' usage."""

    def __init__(
        self,
        inner: LLM,
        ledger: JournalLedger,
        budget: Any,  # the ClusterBudget actor
        attempt: str,
        endpoint: str | None,
        asks: bool,
    ) -> None:
        self.inner = inner
        self.model = inner.model
        self.ledger = ledger
        self.budget = budget
        self.attempt = attempt
        self.endpoint = endpoint
        self.asks = asks  # False: no budget and no endpoint limit, nothing to ask before a call

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        held = None
        if self.asks:
            refusal = await self.budget.acquire.remote(self.endpoint)
            if refusal is not None:
                self.ledger.refusal = refusal
                raise BudgetExceededError(refusal, hint=BUDGET_HINT)
            held = self.endpoint
        try:
            return await self.inner.complete(
                messages,
                schema=schema,
                temperature=temperature,
                max_tokens=max_tokens,
                seed=seed,
            )
        finally:
            self.budget.release.remote(held, self.attempt, self.ledger.take_unsent())


def endpoint_of(config: AlmaConfig) -> str | None:
    """The remote endpoint the acting agent's calls go to, whose in-flight requests the cluster
    bounds (``[llm] concurrency``); None for models served on the node itself."""
    spec = parse_model_spec(config.models.agent)
    if spec.provider != "openai":
        return None
    return config.llm.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


@dataclass(frozen=True)
class Played:
    """What a node sends back for one job: the episode (None when it was stopped) and every
    model call it made."""

    episode: Episode | None
    calls: list[CallEntry] = field(default_factory=list)


class _Stopped(Exception):
    """The driver answered a retrieve with no memory: the episode must stop."""


@dataclass
class _Stage:
    config: AlmaConfig
    domain: Domain
    models: ModelFactory
    endpoint: str | None
    asks: bool


class Player:
    """Plays episode jobs on a node, many at once."""

    def __init__(self, budget: Any, relay: Any) -> None:
        self.budget = budget
        self.relay = relay
        self._stages: dict[str, _Stage] = {}  # by evaluation
        self._built: dict[str, _Stage] = {}  # by settings and domain, shared by evaluations
        self._running: dict[str, asyncio.Task[Any]] = {}

    def ready(self) -> dict[str, Any]:
        """Where this player runs (its node and process)."""
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def busy(self) -> int:
        """Episodes playing now."""
        return len(self._running)

    async def _stage(self, evaluation: str, settings: list[Any]) -> _Stage:
        stage = self._stages.get(evaluation)
        if stage is not None:
            return stage
        config, domain_name = await settings[0]
        key = f"{domain_name}:{config.model_dump_json()}"
        stage = self._built.get(key)
        if stage is None:
            prices = PriceTable(config.prices)
            budget = config.budget
            endpoint = endpoint_of(config)
            stage = _Stage(
                config,
                configured_domain(config, domain_name),
                ModelFactory(config, Ledger(prices)),
                endpoint,
                asks=endpoint is not None or budget.usd is not None or budget.tokens is not None,
            )
            self._built[key] = stage
        self._stages[evaluation] = stage
        return stage

    async def play(self, attempt: str, job: EpisodeJob, settings: list[Any]) -> Played:
        """Play ``job``; ``settings`` holds the reference to the run's settings and domain name
        (in a list, so that Ray hands it over unresolved: it is fetched once per evaluation)."""
        task = asyncio.current_task()
        assert task is not None
        self._running[attempt] = task
        try:
            stage = await self._stage(job.evaluation, settings)
            config = stage.config
            journal = JournalLedger(PriceTable(config.prices))
            metered = stage.models.llm(config.models.agent, "agent", ledger=journal)
            llm = ClusterLLM(metered, journal, self.budget, attempt, stage.endpoint, stage.asks)
            actor = Actor.configured(llm, stage.domain, config.agent, config.models.agent)
            memory = job.memory

            async def recall(start: EpisodeStart) -> dict[str, Any]:
                answer: dict[str, Any] | None = await self.relay.ask.remote(attempt, memory, start)
                if answer is None:
                    raise _Stopped()
                return answer

            try:
                episode = await actor.run(
                    job.task, recall=recall if memory is not None else None, seed=job.seed
                )
            except _Stopped:
                return Played(None, journal.journal)
            return Played(episode, journal.journal)
        finally:
            del self._running[attempt]

    async def close(self) -> None:
        """Close the node's model providers (HTTP clients, embedded servers)."""
        for stage in self._built.values():
            await stage.models.aclose()
        self._built.clear()
        self._stages.clear()

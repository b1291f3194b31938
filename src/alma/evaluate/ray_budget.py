"""One budget for a whole Ray cluster, and the model calls it counts.

The driver's ledger is the run's record, but it learns of a node's model calls only when the
node's episode comes back. So that no call starts anywhere once the budget is spent, one Ray
actor, :class:`ClusterBudget`, holds the run's token and dollar budget and, for each model
endpoint, the limit of requests in flight across the cluster:

- before each model call a node asks it (:meth:`ClusterBudget.acquire`): the answer is the
  reason the budget is spent, or a slot of the call's endpoint;
- after the call the node gives the slot back with the calls it made since (:class:`CallEntry`),
  which count as spent until the driver has recorded the episode they belong to;
- the driver tells it what the run's ledger holds each time it records an episode
  (:meth:`ClusterBudget.settle`), and learns from it the calls of an episode whose node died.

Spent = what the driver recorded + what the nodes reported and the driver has not recorded yet.
A call already sending when the budget runs out still finishes, so a run can pass its budget by
at most the calls in flight at that moment, as on one machine.

The class is plain Python; :mod:`alma.evaluate.ray_executor` makes it a Ray actor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from alma.llm.ledger import RETRY, Budget, Ledger
from alma.types import Purpose, Usage


@dataclass(frozen=True)
class CallEntry:
    """One model call (or one retried attempt, ``kind == "retry"``) as a node's ledger saw it."""

    purpose: Purpose
    model: str
    kind: str
    usage: Usage
    latency_s: float
    cost_usd: float
    from_cache: bool = False
    error: str | None = None
    estimated: bool = False

    @property
    def tokens(self) -> int:
        return self.usage.prompt_tokens + self.usage.completion_tokens

    def record(self, ledger: Ledger) -> None:
        """Write this call to ``ledger`` as if it had been made here."""
        if self.kind == RETRY:
            ledger.record_retry(purpose=self.purpose, model=self.model, cause=self.error or "")
            return
        ledger.record(
            purpose=self.purpose,
            model=self.model,
            usage=self.usage,
            latency_s=self.latency_s,
            from_cache=self.from_cache,
            kind=self.kind,
            error=self.error,
            estimated=self.estimated,
        )


class ClusterBudget:
    """The run's budget and per-endpoint request limit, shared by every node."""

    def __init__(self, budget: Budget, concurrency: int) -> None:
        self.budget = budget
        self.concurrency = concurrency
        self.recorded_tokens = 0  # what the driver's ledger holds
        self.recorded_usd = 0.0
        self.pending: dict[str, list[CallEntry]] = {}  # reported by nodes, not yet recorded
        self.settled: set[str] = set()  # attempts the driver is done with (late reports dropped)
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}

    def spent(self) -> tuple[int, float]:
        entries = [entry for calls in self.pending.values() for entry in calls]
        tokens = self.recorded_tokens + sum(entry.tokens for entry in entries)
        return tokens, self.recorded_usd + sum(entry.cost_usd for entry in entries)

    def exhausted(self) -> str | None:
        """Why no call may start, or None while calls may."""
        if self.budget.usd is None and self.budget.tokens is None:
            return None
        tokens, usd = self.spent()
        if self.budget.usd is not None and usd >= self.budget.usd:
            return f"dollar budget reached (${usd:.4f} of ${self.budget.usd:g})"
        if self.budget.tokens is not None and tokens >= self.budget.tokens:
            return f"token budget reached ({tokens:,} of {self.budget.tokens:,} tokens)"
        return None

    async def acquire(self, endpoint: str | None) -> str | None:
        """Ask to start one call: the reason the budget is spent, or None and (with an
        ``endpoint``) one of its slots, to be given back with :meth:`release`."""
        refusal = self.exhausted()
        if refusal is not None or endpoint is None:
            return refusal
        slots = self._slots.setdefault(endpoint, asyncio.Semaphore(self.concurrency))
        await slots.acquire()
        refusal = self.exhausted()  # spent while this call waited for its slot
        if refusal is not None:
            slots.release()
            return refusal
        count = self.in_flight.get(endpoint, 0) + 1
        self.in_flight[endpoint] = count
        self.most_in_flight[endpoint] = max(self.most_in_flight.get(endpoint, 0), count)
        return None

    def release(self, endpoint: str | None, attempt: str, entries: list[CallEntry]) -> None:
        """A call has ended: give its slot back and count the calls reported with it."""
        if endpoint is not None and endpoint in self._slots:
            self.in_flight[endpoint] -= 1
            self._slots[endpoint].release()
        if entries and attempt not in self.settled:
            self.pending.setdefault(attempt, []).extend(entries)

    def settle(
        self, attempt: str | None, recorded_tokens: int, recorded_usd: float
    ) -> list[CallEntry]:
        """The driver's ledger now holds these totals and (unless None) is done with
        ``attempt``; returns the calls the attempt reported (a lost attempt's are recorded from
        these)."""
        # the ledger only grows, and an async actor may take calls out of their order
        self.recorded_tokens = max(self.recorded_tokens, recorded_tokens)
        self.recorded_usd = max(self.recorded_usd, recorded_usd)
        if attempt is None:
            return []
        self.settled.add(attempt)
        return self.pending.pop(attempt, [])

    def report(self) -> dict[str, object]:
        """Where the budget stands (for tests and benchmarks)."""
        tokens, usd = self.spent()
        return {
            "tokens": tokens,
            "usd": usd,
            "pending_attempts": len(self.pending),
            "most_in_flight": dict(self.most_in_flight),
        }

"""The ledger: every model call of a run, its tokens and dollars, and the run's budget.

Every LLM and embedder the program builds is wrapped in :class:`Metered`, which asks the ledger
before each call (no call starts once the budget is spent) and records the call after it, in
memory and, when the run has a store, in the run's SQLite database at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from pydantic import BaseModel

from alma.errors import BudgetExceededError
from alma.llm.base import LLM, Embedder
from alma.llm.prices import PriceTable
from alma.llm.tokens import approx_tokens
from alma.store import RunStore
from alma.types import PURPOSES, Completion, Message, Purpose, Usage


@dataclass
class Tally:
    calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Usage, cost: float, latency: float, from_cache: bool, error: bool) -> None:
        self.calls += 1
        self.cache_hits += int(from_cache)
        self.errors += int(error)
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cached_tokens += usage.cached_tokens
        self.cost_usd += cost
        self.latency_s += latency

    def as_dict(self) -> dict[str, float | int]:
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 8),
            "latency_s": round(self.latency_s, 4),
        }


@dataclass(frozen=True)
class Budget:
    usd: float | None = None
    tokens: int | None = None

    def describe(self) -> str:
        parts = []
        if self.usd is not None:
            parts.append(f"${self.usd:g}")
        if self.tokens is not None:
            parts.append(f"{self.tokens:,} tokens")
        return " / ".join(parts) or "unlimited"


@dataclass
class Ledger:
    """Counts every call of a run by purpose and enforces its budget (thread-safe)."""

    prices: PriceTable = field(default_factory=PriceTable)
    budget: Budget = field(default_factory=Budget)
    store: RunStore | None = None
    by_purpose: dict[str, Tally] = field(default_factory=lambda: {p: Tally() for p in PURPOSES})
    parent: Ledger | None = None  # a child counts its own calls and forwards them to its parent
    scope: str = ""  # written with each call, e.g. the evaluation it belongs to

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        if self.store is not None and self.parent is None:
            self._load_totals(self.store)

    def child(self, scope: str) -> Ledger:
        """A ledger that tallies one piece of work (an evaluation) inside this one's budget."""
        return Ledger(self.prices, self.budget, parent=self, scope=scope)

    def _load_totals(self, store: RunStore) -> None:
        """A resumed run starts from what its database already holds."""
        rows = store.query(
            "SELECT purpose, COUNT(*) n, SUM(from_cache) hits, SUM(error IS NOT NULL) errs, "
            "SUM(prompt_tokens) p, SUM(completion_tokens) c, SUM(cached_tokens) k, "
            "SUM(cost_usd) usd, SUM(latency_s) lat FROM llm_calls GROUP BY purpose"
        )
        for row in rows:
            self.by_purpose[row["purpose"]] = Tally(
                row["n"],
                row["hits"],
                row["errs"],
                row["p"],
                row["c"],
                row["k"],
                row["usd"],
                row["lat"],
            )

    # ------------------------------------------------------------------ totals
    @property
    def total(self) -> Tally:
        total = Tally()
        for tally in self.by_purpose.values():
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(tally, name))
        return total

    def exhausted(self) -> str | None:
        """Why the budget is spent, or None while calls may still start."""
        if self.parent is not None:
            return self.parent.exhausted()
        if self.budget.usd is None and self.budget.tokens is None:
            return None
        total = self.total
        if self.budget.usd is not None and total.cost_usd >= self.budget.usd:
            return f"dollar budget reached (${total.cost_usd:.4f} of ${self.budget.usd:g})"
        if self.budget.tokens is not None and total.tokens >= self.budget.tokens:
            return f"token budget reached ({total.tokens:,} of {self.budget.tokens:,} tokens)"
        return None

    def check(self) -> None:
        reason = self.exhausted()
        if reason is not None:
            raise BudgetExceededError(
                reason, hint="raise --budget-usd / --budget-tokens and resume the run"
            )

    # ------------------------------------------------------------------ recording
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
    ) -> float:
        """Add one call; returns its dollar cost (0 for cache hits)."""
        if self.parent is not None:
            cost = self.parent.record(
                purpose=purpose,
                model=model,
                usage=usage,
                latency_s=latency_s,
                from_cache=from_cache,
                kind=kind,
                error=error,
                scope=scope or self.scope,
            )
        else:
            cost = 0.0 if from_cache else self.prices.cost(model, usage)
        with self._lock:
            self.by_purpose.setdefault(purpose, Tally()).add(
                usage, cost, latency_s, from_cache, error is not None
            )
        if self.store is not None and self.parent is None:
            self.store.execute(
                "INSERT INTO llm_calls(ts, scope, purpose, model, kind, prompt_tokens,"
                " completion_tokens, cached_tokens, latency_s, cost_usd, from_cache, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    scope,
                    purpose,
                    model,
                    kind,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.cached_tokens,
                    latency_s,
                    cost,
                    int(from_cache),
                    error,
                ),
            )
        return cost

    def summary(self) -> dict[str, object]:
        return {
            "by_purpose": {p: t.as_dict() for p, t in self.by_purpose.items() if t.calls},
            "total": self.total.as_dict(),
            "budget": self.budget.describe(),
        }


class Metered:
    """An LLM whose every call is checked against the budget and written to the ledger."""

    def __init__(self, inner: LLM, ledger: Ledger, purpose: Purpose) -> None:
        self.inner = inner
        self.ledger = ledger
        self.purpose = purpose
        self.model = inner.model

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        self.ledger.check()
        started = time.perf_counter()
        try:
            completion = await self.inner.complete(
                messages, schema=schema, temperature=temperature, max_tokens=max_tokens, seed=seed
            )
        except BudgetExceededError:
            raise
        except Exception as error:
            self.ledger.record(
                purpose=self.purpose,
                model=self.model,
                usage=Usage(),
                latency_s=time.perf_counter() - started,
                error=f"{type(error).__name__}: {error}"[:500],
            )
            raise
        cost = self.ledger.record(
            purpose=self.purpose,
            model=self.model,
            usage=completion.usage,
            latency_s=completion.latency_s,
            from_cache=completion.from_cache,
        )
        return replace(completion, cost_usd=cost)


class MeteredEmbedder:
    """An embedder whose calls are budgeted and recorded like chat calls."""

    def __init__(self, inner: Embedder, ledger: Ledger, purpose: Purpose) -> None:
        self.inner = inner
        self.ledger = ledger
        self.purpose = purpose
        self.model = inner.model
        self.dim = inner.dim

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.ledger.check()
        started = time.perf_counter()
        vectors: np.ndarray
        counted = getattr(self.inner, "embed_counted", None)
        if counted is not None:  # providers that report real token usage
            vectors, tokens = await counted(texts)
        else:
            vectors, tokens = await self.inner.embed(texts), sum(approx_tokens(t) for t in texts)
        self.ledger.record(
            purpose=self.purpose,
            model=self.model,
            usage=Usage(prompt_tokens=tokens),
            latency_s=time.perf_counter() - started,
            kind="embed",
        )
        return vectors

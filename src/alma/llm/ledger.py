"""The ledger: every model call of a run, its tokens and dollars, and the run's budget.

Every LLM and embedder the program builds is wrapped in :class:`Metered`, which asks the ledger
before each call (no call starts once the budget is spent) and records the call after it, in
memory and, when the run has a store, in the run's SQLite database at once: the row is committed
before the call returns to its caller (WAL mode, ``synchronous=NORMAL``, see ``alma.store``), so a
killed process loses no call it has returned; a power cut may lose the last ones.

What is recorded, so that the ledger counts every token an endpoint bills:

- an answered call: its usage (``estimated`` when the endpoint sent none, see
  ``alma.llm.openai_provider``);
- a call whose answer broke the schema even after repair (``MalformedOutputError``): the usage of
  every answer it took, as an errored call;
- a call that failed for good (``LLMError``): the usage of any answer it got first, as an errored
  call;
- a cancelled call (the run stopping, say): its prompt, estimated, with error ``cancelled``;
- every retry: a row of kind ``retry`` with its cause and no tokens (retries are not calls).

Overshoot: the budget is checked before a call and again, through the call hooks of
``alma.llm.retry``, before each HTTP attempt once the endpoint's semaphore is held. Calls already
sending when the budget runs out still finish and are recorded, so a run can pass its budget by
at most the requests in flight at that moment (at most the endpoint concurrency) times the tokens
of one call; nothing starts after that.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from pydantic import BaseModel

from alma.errors import BudgetExceededError, LLMError
from alma.llm.base import LLM, Embedder
from alma.llm.prices import PriceTable
from alma.llm.retry import CallHooks, observing
from alma.llm.tokens import approx_prompt_tokens, approx_tokens
from alma.store import RunStore
from alma.types import PURPOSES, Completion, Message, Purpose, Usage

CANCELLED = "cancelled"  # the error of a call cancelled mid-way
RETRY = "retry"  # the kind of a retry row

_COLUMNS = (
    "ts, scope, purpose, model, kind, prompt_tokens, completion_tokens, cached_tokens, "
    "latency_s, cost_usd, from_cache, error"
)
_INSERT = f"INSERT INTO llm_calls({_COLUMNS}) VALUES ({', '.join('?' * 12)})"
_INSERT_ESTIMATED = f"INSERT INTO llm_calls({_COLUMNS}, estimated) VALUES ({', '.join('?' * 13)})"


@dataclass
class Tally:
    calls: int = 0  # calls that ended: answered, failed or cancelled (retries are not calls)
    cache_hits: int = 0
    errors: int = 0  # calls that gave no usable answer (failed for good, or broke the schema)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    retries: int = 0  # failed attempts that were tried again
    cancelled: int = 0  # calls cancelled mid-way, counted at their prompt size
    estimated: int = 0  # calls whose tokens are estimated from text

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(
        self,
        usage: Usage,
        cost: float,
        latency: float,
        *,
        from_cache: bool = False,
        error: str | None = None,
        estimated: bool = False,
    ) -> None:
        self.calls += 1
        self.cache_hits += int(from_cache)
        self.errors += int(error is not None and error != CANCELLED)
        self.cancelled += int(error == CANCELLED)
        self.estimated += int(estimated)
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
            "retries": self.retries,
            "cancelled": self.cancelled,
            "estimated": self.estimated,
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
        self._has_estimated = False
        if self.store is not None and self.parent is None:
            self._has_estimated = _ensure_estimated_column(self.store)
            self._load_totals(self.store)

    def child(self, scope: str) -> Ledger:
        """A ledger that tallies one piece of work (an evaluation) inside this one's budget."""
        return Ledger(self.prices, self.budget, parent=self, scope=scope)

    def _load_totals(self, store: RunStore) -> None:
        """A resumed run starts from what its database already holds (retry rows are no calls)."""
        estimated = "SUM(estimated)" if self._has_estimated else "0"
        retry, cancelled = f"kind = '{RETRY}'", f"COALESCE(error, '') = '{CANCELLED}'"
        rows = store.query(
            f"SELECT purpose, SUM(NOT {retry}) n, SUM({retry}) retries, SUM(from_cache) hits, "
            f"SUM(NOT {retry} AND error IS NOT NULL AND NOT {cancelled}) errs, "
            f"SUM(NOT {retry} AND {cancelled}) cancelled, {estimated} est, "
            "SUM(prompt_tokens) p, SUM(completion_tokens) c, SUM(cached_tokens) k, "
            "SUM(cost_usd) usd, SUM(latency_s) lat FROM llm_calls GROUP BY purpose"
        )
        for row in rows:
            self.by_purpose[row["purpose"]] = Tally(
                calls=row["n"],
                cache_hits=row["hits"],
                errors=row["errs"],
                prompt_tokens=row["p"],
                completion_tokens=row["c"],
                cached_tokens=row["k"],
                cost_usd=row["usd"],
                latency_s=row["lat"],
                retries=row["retries"],
                cancelled=row["cancelled"],
                estimated=row["est"],
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
        estimated: bool = False,
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
                estimated=estimated,
            )
        else:
            cost = 0.0 if from_cache else self.prices.cost(model, usage)
        with self._lock:
            self.by_purpose.setdefault(purpose, Tally()).add(
                usage, cost, latency_s, from_cache=from_cache, error=error, estimated=estimated
            )
        if self.store is not None and self.parent is None:
            self._write(
                scope, purpose, model, kind, usage, latency_s, cost, from_cache, error, estimated
            )
        return cost

    def record_retry(self, *, purpose: Purpose, model: str, cause: str, scope: str = "") -> None:
        """Add one retried attempt of a call (a row of kind ``retry``, no tokens, not a call)."""
        if self.parent is not None:
            self.parent.record_retry(
                purpose=purpose, model=model, cause=cause, scope=scope or self.scope
            )
        with self._lock:
            self.by_purpose.setdefault(purpose, Tally()).retries += 1
        if self.store is not None and self.parent is None:
            self._write(scope, purpose, model, RETRY, Usage(), 0.0, 0.0, False, cause, False)

    def _write(
        self,
        scope: str,
        purpose: str,
        model: str,
        kind: str,
        usage: Usage,
        latency_s: float,
        cost: float,
        from_cache: bool,
        error: str | None,
        estimated: bool,
    ) -> None:
        assert self.store is not None
        values: tuple[object, ...] = (
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
        )
        if self._has_estimated:
            self.store.execute(_INSERT_ESTIMATED, (*values, int(estimated)))
        else:
            self.store.execute(_INSERT, values)

    def summary(self) -> dict[str, object]:
        return {
            "by_purpose": {
                p: t.as_dict() for p, t in self.by_purpose.items() if t.calls or t.retries
            },
            "total": self.total.as_dict(),
            "budget": self.budget.describe(),
        }


def _ensure_estimated_column(store: RunStore) -> bool:
    """Add ``llm_calls.estimated`` to a database made before it existed; True when it is there."""
    columns = {row["name"] for row in store.query("PRAGMA table_info(llm_calls)")}
    if "estimated" in columns:
        return True
    if store.read_only:
        return False
    try:
        store.execute("ALTER TABLE llm_calls ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0")
    except sqlite3.OperationalError as error:  # another process added it meanwhile
        if "duplicate column" not in str(error):
            raise
    return True


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


class Metered:
    """An LLM whose every call is checked against the budget and written to the ledger."""

    def __init__(self, inner: LLM, ledger: Ledger, purpose: Purpose) -> None:
        self.inner = inner
        self.ledger = ledger
        self.purpose = purpose
        self.model = inner.model
        self._hooks = CallHooks(before_attempt=ledger.check, on_retry=self._retried)

    def _retried(self, cause: str) -> None:
        self.ledger.record_retry(purpose=self.purpose, model=self.model, cause=cause)

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
            with observing(self._hooks):
                completion = await self.inner.complete(
                    messages,
                    schema=schema,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    seed=seed,
                )
        except BudgetExceededError:
            raise
        except asyncio.CancelledError:
            prompt = approx_prompt_tokens((m.content for m in messages), schema)
            self._failed(Usage(prompt_tokens=prompt), CANCELLED, started, estimated=True)
            raise
        except LLMError as error:  # MalformedOutputError included: its answers were billed
            self._failed(error.usage, _describe(error), started, error.usage_estimated)
            raise
        except Exception as error:
            self._failed(Usage(), _describe(error), started, estimated=False)
            raise
        cost = self.ledger.record(
            purpose=self.purpose,
            model=self.model,
            usage=completion.usage,
            latency_s=completion.latency_s,
            from_cache=completion.from_cache,
            estimated=completion.usage_estimated,
        )
        return completion if cost == completion.cost_usd else replace(completion, cost_usd=cost)

    def _failed(self, usage: Usage, error: str, started: float, estimated: bool) -> None:
        self.ledger.record(
            purpose=self.purpose,
            model=self.model,
            usage=usage,
            latency_s=time.perf_counter() - started,
            error=error,
            estimated=estimated,
        )


class MeteredEmbedder:
    """An embedder whose calls are budgeted and recorded like chat calls."""

    def __init__(self, inner: Embedder, ledger: Ledger, purpose: Purpose) -> None:
        self.inner = inner
        self.ledger = ledger
        self.purpose = purpose
        self.model = inner.model
        self.dim = inner.dim
        self._hooks = CallHooks(before_attempt=ledger.check, on_retry=self._retried)

    def _retried(self, cause: str) -> None:
        self.ledger.record_retry(purpose=self.purpose, model=self.model, cause=cause)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.ledger.check()
        started = time.perf_counter()
        vectors: np.ndarray
        estimate = sum(approx_tokens(text) for text in texts)
        try:
            with observing(self._hooks):
                counted = getattr(self.inner, "embed_counted", None)
                if counted is not None:  # providers that report real token usage
                    vectors, tokens, estimated = await counted(texts)
                else:
                    vectors, tokens, estimated = await self.inner.embed(texts), estimate, True
        except BudgetExceededError:
            raise
        except asyncio.CancelledError:
            self._record(Usage(prompt_tokens=estimate), started, CANCELLED, estimated=True)
            raise
        except Exception as error:
            self._record(Usage(), started, _describe(error), estimated=False)
            raise
        self._record(Usage(prompt_tokens=tokens), started, None, estimated=estimated)
        return vectors

    def _record(self, usage: Usage, started: float, error: str | None, estimated: bool) -> None:
        self.ledger.record(
            purpose=self.purpose,
            model=self.model,
            usage=usage,
            latency_s=time.perf_counter() - started,
            kind="embed",
            error=error,
            estimated=estimated,
        )

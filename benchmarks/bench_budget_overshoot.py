"""How far concurrent callers overshoot a token budget, on an endpoint that bills what it serves.

N callers share one ``Metered(OpenAIProvider)`` and call until the ledger refuses (the budget is
spent). The endpoint is the test suite's fake OpenAI server (``tests/fake_openai.py``) over real
HTTP on 127.0.0.1; it counts the prompt + completion tokens of every answer it sends, which is
what a real endpoint would bill. For each concurrency level the table shows the budget, the
tokens the server billed, the tokens alma recorded (they must be equal), and the overshoot past
the budget in % and in calls. The bound: fewer calls than were in flight when the budget ran out
(the endpoint's semaphore, or the callers when there is none).

    .venv/bin/python benchmarks/bench_budget_overshoot.py [--budget 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from alma.errors import BudgetExceededError
from alma.llm.ledger import Budget, Ledger, Metered
from alma.llm.openai_provider import OpenAIProvider
from alma.types import Message

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_openai import FakeOpenAI, answer

PROMPT, COMPLETION = 400, 100  # billed per answer
PER_CALL = PROMPT + COMPLETION
MESSAGES = [Message("user", "You are in a kitchen. What now?")]
LEVELS = ((1, None), (4, None), (16, None), (64, None), (64, 8))  # (callers, semaphore)


async def measure(
    fake: FakeOpenAI, budget: int, callers: int, concurrency: int | None
) -> tuple[int, int, int, float]:
    """Tokens billed, tokens recorded, requests in flight at most, seconds."""
    served_before = fake.served_tokens
    semaphore = asyncio.Semaphore(concurrency) if concurrency else None
    provider = OpenAIProvider(
        "bench-model", base_url=fake.base_url, api_key="k", semaphore=semaphore
    )
    ledger = Ledger(budget=Budget(tokens=budget))
    llm = Metered(provider, ledger, "agent")

    async def caller() -> None:
        while True:
            try:
                await llm.complete(MESSAGES)
            except BudgetExceededError:
                return

    started = time.perf_counter()
    try:
        await asyncio.gather(*(caller() for _ in range(callers)))
    finally:
        await provider.close()
    billed = fake.served_tokens - served_before
    return billed, ledger.total.tokens, min(callers, concurrency or callers), started


async def main(budget: int) -> None:
    logging.getLogger("alma.llm").setLevel(logging.ERROR)  # no price for the bench model: fine
    print(f"token budget {budget:,}; each answer bills {PER_CALL} tokens ({PROMPT} + {COMPLETION})")
    header = (
        f"{'callers':>7} {'semaphore':>9} {'billed':>8} {'recorded':>8} {'equal':>5} "
        f"{'overshoot':>9} {'%':>6} {'calls':>5} {'bound':>5} {'time s':>6}"
    )
    print(header)
    print("-" * len(header))
    with FakeOpenAI(answer("fine", prompt_tokens=PROMPT, completion_tokens=COMPLETION)) as fake:
        fake.default = answer(
            "fine", prompt_tokens=PROMPT, completion_tokens=COMPLETION, delay_s=0.005
        )
        for callers, concurrency in LEVELS:
            billed, recorded, in_flight, started = await measure(fake, budget, callers, concurrency)
            seconds = time.perf_counter() - started
            over = recorded - budget
            print(
                f"{callers:>7} {concurrency or '-':>9} {billed:>8,} {recorded:>8,} "
                f"{'yes' if billed == recorded else 'NO':>5} {over:>9,} "
                f"{100 * over / budget:>5.1f}% {over / PER_CALL:>5.1f} {in_flight:>5} "
                f"{seconds:>6.2f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20_000, help="token budget per level")
    asyncio.run(main(parser.parse_args().budget))

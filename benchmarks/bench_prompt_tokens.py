"""Prompt tokens the acting agent sends, per call and per evaluation, against the original's.

Two whole evaluations (``no_memory`` and ``trajectory_retrieval``; 20 tasks: 10 build episodes,
then 10 deploy episodes three times) run through the real protocol, with the acting agent on
``openai:`` pointed at the test suite's fake endpoint (``tests/fake_openai.py``). What is
counted is what the endpoint receives: every chat request's messages (characters, and tokens as
``alma.llm.tokens`` estimates them: about four characters a token plus five a message, the
way the original's figures were counted) and its ``json_schema`` response format.

The fake model never wins: each step it answers a fixed-length thought and an admissible
action that moves or looks (never takes an object), drawn from a hash of the request, so every
episode runs the full 30 steps and the figures do not depend on luck.

Games: ALFWorld's own engine on the domain's tasks (the official data set when installed, else
tasks generated from ALFWorld's shipped resources, cached in the user cache folder on first
use); without ALFWorld installed (or with ``--shaped``), ALFWorld-shaped rooms (the same kinds
of observations and admissible-action lists, from a few lines of code below).

The original system's figures are for evaluations of 1,402 calls; alma's evaluation makes a
different number of calls, so its total is scaled to 1,402 calls (per-call mean x 1,402), and
the ratio is the ratio of per-call means. Target: at most 0.5x for both designs. Every episode
here runs 30 steps, the longest prompts there are; an evaluation whose episodes end earlier (the
original's, where some are won) has a smaller mean per call for the same prompts, so for
``no_memory`` the prompt at step 30 is compared too (the original's: 25.8k characters).

    .venv/bin/python benchmarks/bench_prompt_tokens.py [--tasks 20] [--shaped]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alma.agent.conversation import ACTIONS_HEADER
from alma.config import load_config
from alma.domains.base import Domain
from alma.errors import AlmaError
from alma.evaluate.protocol import Evaluator
from alma.llm.tokens import approx_message_tokens, approx_tokens
from alma.memory.loading import reference_design
from alma.run import Run
from alma.types import Observation, Split, Task, Transition

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_openai import Answer, FakeOpenAI, answer

DESIGNS = ("no_memory", "trajectory_retrieval")
ORIGINAL_TOKENS = {"no_memory": 3_540_000, "trajectory_retrieval": 9_370_000}
ORIGINAL_CALLS = 1_402
# the original's prompt at step 30 of an episode without memory, in characters
ORIGINAL_STEP30_CHARS = {"no_memory": 25_800}
TARGET = 0.5
THOUGHT = (
    "The target is not in sight yet; I will check the next receptacle I have not "
    "visited and look at what it holds."
)
# moves and looks only: the fake model never picks anything up, so no episode is won early
SAFE = ("go to ", "open ", "close ", "examine ", "look", "inventory")
STEP = re.compile(r"Step (\d+) of (\d+)\.")


# --------------------------------------------------------------------------- the fake model


def fake_model(body: dict[str, Any]) -> Answer:
    """A step answer: the fixed thought and an admissible move drawn from the request's hash."""
    newest = body["messages"][-1]["content"]
    listed = newest.split(ACTIONS_HEADER, 1)[1] if ACTIONS_HEADER in newest else ""
    actions = [line[2:].strip() for line in listed.splitlines() if line.startswith("- ")]
    moves = [action for action in actions if action.startswith(SAFE)] or ["look"]
    digest = hashlib.sha256(json.dumps(body["messages"]).encode()).digest()
    action = moves[int.from_bytes(digest[:4], "big") % len(moves)]
    return answer(json.dumps({"thought": THOUGHT, "action": action}))


@dataclass
class Count:
    """What the endpoint received for one design."""

    calls: int = 0
    chars: int = 0
    tokens: int = 0
    schema_tokens: int = 0
    by_step: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    chars_by_step: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, body: dict[str, Any]) -> None:
        contents = [str(message.get("content") or "") for message in body["messages"]]
        tokens = approx_message_tokens(contents)
        response_format = body.get("response_format") or {}
        schema = response_format.get("json_schema", {}).get("schema")
        schema_tokens = approx_tokens(json.dumps(schema)) if schema else 0
        chars = sum(len(content) for content in contents)
        self.calls += 1
        self.chars += chars
        self.tokens += tokens + schema_tokens
        self.schema_tokens += schema_tokens
        found = STEP.search(contents[-1])
        if found:
            step = int(found.group(1))
            self.by_step[step].append(tokens + schema_tokens)
            self.chars_by_step[step].append(chars)

    @property
    def per_call(self) -> float:
        return self.tokens / max(1, self.calls)


# --------------------------------------------------------------------------- the games


def real_alfworld(tasks_per_split: int) -> Domain | None:
    """ALFWorld's own domain, or None when ALFWorld is not installed."""
    try:
        from alma.domains.alfworld import AlfWorldDomain
        from alma.domains.alfworld.dependencies import load_engine

        load_engine()
        return AlfWorldDomain(tasks_per_split=tasks_per_split)
    except (AlmaError, ImportError):
        return None


ROOM = (
    [f"cabinet {n}" for n in range(12, 0, -1)]
    + ["coffeemachine 1", "countertop 3", "countertop 2", "countertop 1", "diningtable 1"]
    + [f"drawer {n}" for n in range(6, 0, -1)]
    + ["fridge 1", "garbagecan 1", "microwave 1", "sinkbasin 1"]
    + [f"stoveburner {n}" for n in range(4, 0, -1)]
    + ["toaster 1"]
)
THINGS = ["apple 1", "bowl 2", "butterknife 1", "cup 3", "egg 1", "knife 2", "mug 1", "plate 2"]
CLOSED = ("cabinet", "drawer", "fridge", "microwave")
TARGETS = ["apple", "bowl", "cup", "egg", "mug", "plate"]


class ShapedRoom:
    """An ALFWorld-shaped kitchen: the same kinds of observations and admissible actions."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.here = ""
        self.opened: set[str] = set()

    def reset(self) -> Observation:
        self.here, self.opened = "", set()
        seen = ", ".join(f"a {place}" for place in ROOM[:-1]) + f", and a {ROOM[-1]}"
        text = (
            "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking "
            f"quickly around you, you see {seen}.\n\nYour task is to: {self.task.description}."
        )
        return Observation(text, self._actions())

    def step(self, action: str) -> Transition:
        if action.startswith("go to "):
            self.here = action[6:]
            text = f"You arrive at {self.here}. " + self._contents()
        elif action.startswith("open "):
            self.opened.add(self.here)
            text = f"You open the {self.here}. " + self._contents()
        elif action.startswith("close "):
            self.opened.discard(self.here)
            text = f"You close the {self.here}."
        else:
            text = "Nothing happens."
        return Transition(Observation(text, self._actions()))

    def close(self) -> None:
        return None

    def _contents(self) -> str:
        if self.here.startswith(CLOSED) and self.here not in self.opened:
            return f"The {self.here} is closed."
        rank = ROOM.index(self.here) + self.task.seed
        held = [THINGS[(rank + k) % len(THINGS)] for k in range(rank % 3)]
        if not held:
            return f"On the {self.here}, you see nothing."
        return f"On the {self.here}, you see " + ", ".join(f"a {thing}" for thing in held) + "."

    def _actions(self) -> tuple[str, ...]:
        actions = [f"go to {place}" for place in sorted(ROOM)]
        if self.here.startswith(CLOSED):
            verb = "close" if self.here in self.opened else "open"
            actions.append(f"{verb} {self.here}")
        if self.here:
            actions.append(f"examine {self.here}")
        return (*actions, "help", "inventory", "look")


@dataclass
class ShapedAlfWorld:
    """ALFWorld-shaped tasks, for machines without ALFWorld."""

    tasks_per_split: int
    name: str = "alfworld"
    step_limit: int = 30
    description: str = "Household tasks in a kitchen."
    instructions: str = (
        "You are in a household. Finish the task within 30 actions; "
        "'go to' a place before you interact with what is there."
    )

    def tasks(self, split: Split) -> tuple[Task, ...]:
        return tuple(
            Task(
                f"shaped-{split}-{index:03d}",
                split,
                f"put a clean {TARGETS[index % len(TARGETS)]} in fridge",
                seed=index,
            )
            for index in range(self.tasks_per_split)
        )

    def make_env(self, task: Task) -> ShapedRoom:
        return ShapedRoom(task)


# --------------------------------------------------------------------------- the evaluations


async def evaluate(domain: Domain, design: str, tasks: int, fake: FakeOpenAI) -> tuple[int, float]:
    """One evaluation of ``design``; its episode count and seconds."""
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(
            overrides={
                "models": {"agent": "openai:fake-agent", "embedder": "hash"},
                "llm": {"base_url": fake.base_url, "cache": False, "max_retries": 0},
                "eval": {"tasks": tasks},
            },
            cwd=Path(folder),
        )
        async with Run(config, Path(folder) / "run") as run:
            evaluator = Evaluator(run, domain)
            started = time.perf_counter()
            result = await evaluator.evaluate(reference_design(design), "train")
            seconds = time.perf_counter() - started
    if result.status != "done":
        raise SystemExit(f"{design}: evaluation {result.status}: {result.error}")
    return result.n_episodes, seconds


def report(design: str, count: Count, episodes: int, seconds: float) -> float:
    original_per_call = ORIGINAL_TOKENS[design] / ORIGINAL_CALLS
    ratio = count.per_call / original_per_call
    last = max(count.by_step) if count.by_step else 0
    at_last = statistics.mean(count.by_step[last]) if last else 0.0
    chars_last = statistics.mean(count.chars_by_step[last]) if last else 0.0
    scaled = count.per_call * ORIGINAL_CALLS
    print(f"{design}: {episodes} episodes, {count.calls} calls, {seconds:.1f} s")
    print(
        f"  per call      : mean {count.per_call:,.0f} tokens "
        f"(of which {count.schema_tokens / max(1, count.calls):,.0f} the response schema), "
        f"at step {last}: {at_last:,.0f} tokens / {chars_last:,.0f} characters"
    )
    print(
        f"  per evaluation: {count.tokens / 1e6:.2f}M tokens in {count.calls} calls; "
        f"scaled to {ORIGINAL_CALLS:,} calls: {scaled / 1e6:.2f}M "
        f"(original {ORIGINAL_TOKENS[design] / 1e6:.2f}M, {original_per_call:,.0f} per call)"
    )
    print(f"  ratio to the original: {ratio:.2f}x per call (target <= {TARGET}x)")
    if design in ORIGINAL_STEP30_CHARS and last == 30:
        original = ORIGINAL_STEP30_CHARS[design]
        print(
            f"  at step 30 alone: {chars_last:,.0f} characters against the original's "
            f"{original:,}: {chars_last / original:.2f}x"
        )
    return ratio


async def main(args: argparse.Namespace) -> int:
    logging.getLogger("alma").setLevel(logging.ERROR)
    domain = None if args.shaped else real_alfworld(args.tasks)
    games = "ALFWorld's engine"
    if domain is None:
        domain, games = ShapedAlfWorld(args.tasks), "ALFWorld-shaped rooms"
    else:
        games += f", {getattr(domain, 'source', '?')} tasks"
    print(f"prompt tokens of the acting agent: {games}, {args.tasks} tasks per evaluation")
    ratios = []
    with FakeOpenAI(default=fake_model) as fake:
        for design in DESIGNS:
            before = len(fake.chat_requests)
            episodes, seconds = await evaluate(domain, design, args.tasks, fake)
            count = Count()
            for request in fake.chat_requests[before:]:
                count.add(request.body)
            ratios.append(report(design, count, episodes, seconds))
    verdict = "PASS" if max(ratios) <= TARGET else "FAIL"
    print(f"target: at most {TARGET}x the original's tokens for both designs: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20, help="tasks per evaluation")
    parser.add_argument("--shaped", action="store_true", help="ALFWorld-shaped rooms")
    raise SystemExit(asyncio.run(main(parser.parse_args())))

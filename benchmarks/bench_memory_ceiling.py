"""Can this acting model use a memory at all? The same tasks without notes and with perfect ones.

Before a search can show memory helping, the acting model must follow what a memory tells it.
This plays the same toy tasks (the ``cottages`` test bed by default) in three arms, side by side
with the same seeds: ``none`` sends no notes; ``won`` sends, as the memory of every episode, the
winning moves of a few ``train`` games of the same house (the notes a trajectory memory would
keep after a perfect build phase: the task and its actions, ``outcome: success``); ``rule``
states the way those games share as one insight (what an insight memory would distil). The gap
to ``none`` is about the most a memory design can add for this model on this profile: its
ceiling. Per arm: wins with the standard error, steps, seconds per step; then the gain with its
paired bootstrap interval and p-value.

    .venv/bin/python benchmarks/bench_memory_ceiling.py --model scripted:recall   # seconds
    .venv/bin/python benchmarks/bench_memory_ceiling.py --model local --tasks 8   # ~5 min, 2 cores
    .venv/bin/python benchmarks/bench_memory_ceiling.py --model local-small --think off
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from alma.agent.actor import Actor
from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.evaluate.statistics import mean_and_stderr, paired_bootstrap
from alma.run import Run
from alma.types import Episode

ARMS = ("none", "won", "rule")


def perfect_notes(domain: ToyDomain, games: int) -> dict[str, dict[str, Any] | None]:
    """Per arm, the memory of a perfect build phase on the first ``train`` games: nothing, their
    winning moves as episodes, or the way they share stated as one insight."""
    solved = [(task, domain.solve(task)) for task in domain.tasks("train")[:games]]
    episodes = [
        {"task": task.description, "outcome": "success", "actions": actions}
        for task, actions in solved
    ]
    longest = max((actions for _, actions in solved), key=len)
    way = ", then ".join(action for action in longest if action.startswith("go "))
    insight = (
        f"In every game won so far the way from the first room was: {way} (stop as soon as "
        "you see the object). Then take the object named in the task."
    )
    return {"none": None, "won": {"similar_episodes": episodes}, "rule": {"insights": [insight]}}


async def main(args: argparse.Namespace) -> None:
    domain = ToyDomain(profile=args.profile)
    tasks = domain.tasks(args.split)[: args.tasks]
    notes = perfect_notes(domain, args.notes)
    played: dict[str, list[Episode]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(
            overrides={
                "models": {"agent": args.model},
                "llm": {"cache": False},
                "agent": {"think": args.think == "on"},
            },
            cwd=Path(folder),
        )
        async with Run(config, Path(folder) / "run") as run:
            actor = Actor.configured(run.models.for_role("agent"), domain, config.agent, args.model)
            print(
                f"{args.model}, toy {args.profile} {args.split}, {len(tasks)} tasks, "
                f"{domain.step_limit} steps, think {args.think}, "
                f"{args.notes} won games as notes",
                flush=True,
            )
            started = time.perf_counter()
            for index, task in enumerate(tasks):
                both = await asyncio.gather(
                    *(actor.run(task, notes[arm], seed=1000 + index) for arm in ARMS)
                )
                for arm, episode in zip(ARMS, both, strict=True):
                    played[arm].append(episode)
                    actions = ", ".join(step.action for step in episode.steps)
                    outcome = "won " if episode.outcome.success else "lost"
                    print(f"  {arm:<5} {task.id}: {outcome} {actions[:120]}", flush=True)
            seconds = time.perf_counter() - started

    steps = sum(e.outcome.steps for arm in ARMS for e in played[arm])
    print(f"\n{'arm':<6} {'success':>15} {'steps':>6}")
    scores = {}
    for arm in ARMS:
        wins = [float(e.outcome.success) for e in played[arm]]
        scores[arm] = {task.id: won for task, won in zip(tasks, wins, strict=True)}
        mean, stderr = mean_and_stderr(list(scores[arm].values()))
        arm_steps = sum(e.outcome.steps for e in played[arm])
        print(f"{arm:<6} {mean:>8.3f} ± {stderr:.3f} {arm_steps:>6}")
    for arm in ARMS[1:]:
        paired = paired_bootstrap(scores[arm], scores["none"])
        print(
            f"ceiling ({arm} - none): {paired.gain:+.3f}, 95% CI "
            f"[{paired.ci_low:+.2f}, {paired.ci_high:+.2f}], p = {paired.p_value:.3f}"
        )
    per_step = seconds / max(1, steps)
    print(f"wall {seconds:.0f} s, {per_step:.2f} s/step ({len(ARMS)} episodes at a time)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="local", help="an acting model spec")
    parser.add_argument("--profile", default="cottages", help="a toy profile")
    parser.add_argument("--split", default="eval_in_distribution")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--notes", type=int, default=3, help="won train games in the notes")
    parser.add_argument("--think", choices=("on", "off"), default="off")
    asyncio.run(main(parser.parse_args()))

"""The acting agent with and without ``constrain_actions``, side by side, on the embedded model.

Each toy task is played twice at once, constrained and not, with the same seed: the two share
the server's two slots and the machine, so a busy machine slows both alike. Per arm: successes,
steps, invalid actions (answers that matched no admissible action, or broke the schema), seconds
of episode wall time, and the prompt cache share (cached / prompt tokens, as the server reports
them to the ledger).

``--structured json_object`` sends the same requests in ``json_object`` mode (the fallback for
endpoints without native ``json_schema``): the schema, enum included, is then written into the
system message, which changes whenever the admissible actions do; the cache share shows what
that costs.

    .venv/bin/python benchmarks/bench_constrained_actions.py            # ~5-10 min on 2 cores
    .venv/bin/python benchmarks/bench_constrained_actions.py --model local --tasks 6 --max-steps 15
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from alma.agent.actor import Actor
from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.llm.base import LLM
from alma.llm.ledger import Ledger, Metered
from alma.llm.local import LocalLLM
from alma.llm.openai_provider import OpenAIProvider
from alma.run import Run
from alma.types import Episode, Message, Task


@dataclass
class Arm:
    name: str
    episodes: list[Episode] = field(default_factory=list)
    seconds: float = 0.0
    ledger: Ledger = field(default_factory=Ledger)

    def row(self) -> str:
        played = len(self.episodes)
        wins = sum(episode.outcome.success for episode in self.episodes)
        steps = sum(episode.outcome.steps for episode in self.episodes)
        invalid = sum(episode.invalid_actions for episode in self.episodes)
        agent = self.ledger.by_purpose["agent"]
        share = agent.cached_tokens / max(1, agent.prompt_tokens)
        return (
            f"{self.name:<14} {wins:>3}/{played:<3} {steps:>6} {invalid:>8} "
            f"{self.seconds:>8.0f} {self.seconds / max(1, steps):>7.1f} "
            f"{agent.completion_tokens / max(1, agent.calls):>8.0f} {share:>7.0%}"
        )


async def json_object_provider(run: Run, spec: str) -> LLM:
    """A provider in ``json_object`` mode on the embedded server ``spec`` runs."""
    llm = run.models.llm(spec, "agent")
    await llm.complete([Message("user", "Say hi.")], max_tokens=2)  # starts the server
    inner = run.models._providers[spec]
    assert isinstance(inner, LocalLLM) and inner.server is not None
    server = inner.server
    provider = OpenAIProvider(
        server.model,
        base_url=server.base_url,
        api_key=server.api_key,
        timeout_s=run.config.local.timeout_s,
        structured="json_object",
    )
    run.closers.append(provider.close)
    return provider


async def play(arm: Arm, actor: Actor, task: Task, seed: int) -> None:
    started = time.perf_counter()
    episode = await actor.run(task, seed=seed)
    arm.seconds += time.perf_counter() - started
    arm.episodes.append(episode)
    print(
        f"  {arm.name:<14} {task.id}: {'won ' if episode.outcome.success else 'lost'} "
        f"in {episode.outcome.steps:>2} steps, {episode.invalid_actions} invalid, "
        f"actions: {', '.join(step.action for step in episode.steps)[:150]}",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(
            overrides={
                "models": {"agent": args.model},
                "llm": {"cache": False},
                "agent": {"max_steps": args.max_steps},
            },
            cwd=Path(folder),
        )
        domain = ToyDomain()
        tasks = domain.tasks(args.split)[: args.tasks]
        async with Run(config, Path(folder) / "run") as run:
            if args.structured == "json_object":
                inner = await json_object_provider(run, args.model)
            else:
                inner = run.models._inner(args.model)
                await inner.complete([Message("user", "Say hi.")], max_tokens=2)  # start it
            arms = [Arm("constrained"), Arm("unconstrained")]
            actors = []
            for arm in arms:
                actor = Actor.configured(
                    Metered(inner, arm.ledger, "agent"), domain, config.agent, args.model
                )
                actor.constrain_actions = arm.name == "constrained"
                actors.append(actor)
            print(
                f"{args.model}, {args.structured}, {len(tasks)} {args.split} toy tasks, "
                f"at most {args.max_steps} steps, temperature {config.agent.temperature}"
            )
            started = time.perf_counter()
            for index, task in enumerate(tasks):
                await asyncio.gather(
                    *(
                        play(arm, actor, task, 1000 + index)
                        for arm, actor in zip(arms, actors, strict=True)
                    )
                )
            total = time.perf_counter() - started
    print(
        f"\n{'arm':<14} {'won':>7} {'steps':>6} {'invalid':>8} {'seconds':>8} {'s/step':>7} "
        f"{'out/call':>8} {'cached':>7}"
    )
    for arm in arms:
        print(arm.row())
    print(f"wall time {total:.0f} s (the arms ran side by side)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="local-small", help="a local model spec")
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--split", default="train")
    parser.add_argument(
        "--structured", choices=("json_schema", "json_object"), default="json_schema"
    )
    asyncio.run(main(parser.parse_args()))

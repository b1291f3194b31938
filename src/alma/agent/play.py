"""``alma play``: one episode of one task, saved in a run directory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alma import progress
from alma.agent.actor import Actor
from alma.config import AlmaConfig
from alma.domains.base import Domain, Drawable, StepLimit, TextEnv
from alma.domains.registry import configured_domain, find_task, open_env, prepare_tasks
from alma.errors import UsageError
from alma.run import Run
from alma.types import Episode, Split, Task


@dataclass(frozen=True)
class PlayResult:
    episode: Episode
    task_id: str
    run_dir: Path
    ledger: dict[str, Any]
    frames: tuple[str, ...] = ()  # the game drawn after reset and after each step (--render)


async def play_one(
    config: AlmaConfig,
    domain_name: str,
    *,
    task_id: str | None = None,
    split: Split = "train",
    run_dir: Path | None = None,
    render: bool = False,
) -> PlayResult:
    domain = configured_domain(config, domain_name)
    if task_id is not None:
        task = find_task(domain, task_id)
    else:
        tasks = domain.tasks(split)
        if not tasks:
            raise UsageError(
                f"domain {domain_name!r} has no {split} tasks", hint="pick another --split"
            )
        task = tasks[config.run.seed % len(tasks)]
    await asyncio.to_thread(prepare_tasks, domain, [task])
    if render:  # refuse before playing, not after
        env = open_env(domain, task)
        try:
            _drawing(domain, env)
        finally:
            env.close()
    async with Run(config, run_dir, prefix="play") as run:
        actor = Actor.configured(
            run.models.for_role("agent"), domain, config.agent, config.models.agent
        )
        progress.status(f"playing {task.id} with {config.models.agent}...")
        episode = await actor.run(task, seed=config.run.seed)
        run.store.add_episode(domain.name, task, episode, label="play")
        frames = (
            replay_frames(domain, task, [step.action for step in episode.steps]) if render else ()
        )
        return PlayResult(episode, task.id, run.path, run.ledger.summary(), frames)


def replay_frames(domain: Domain, task: Task, actions: list[str]) -> tuple[str, ...]:
    """The game drawn for humans, after reset and after each action, replayed in a fresh
    environment (the same task is always the same game, so the replay is the episode)."""
    env = open_env(domain, task)
    try:
        draw = _drawing(domain, env)
        env.reset()
        frames = [str(draw())]
        for action in actions:
            transition = env.step(action)
            frames.append(str(draw()))
            if transition.done:
                break
        return tuple(frames)
    finally:
        env.close()


def _drawing(domain: Domain, env: TextEnv) -> Callable[[], object]:
    """The environment's ``render`` (human drawing), or a usage error."""
    game = env.env if isinstance(env, StepLimit) else env
    if not isinstance(game, Drawable):
        raise UsageError(
            f"domain {domain.name!r} has no drawing for humans", hint="play without --render"
        )
    return game.render

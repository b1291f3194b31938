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
from alma.types import Episode, Split, Step, Task


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
    on_frame: Callable[[str], None] | None = None,
) -> PlayResult:
    """One episode, saved in a run. With ``render`` the game is drawn after reset and after
    each step as it is played (each drawing goes to ``on_frame`` at once, and all come back in
    the result): a second copy of the game replays the agent's actions step by step (the same
    task is always the same game)."""
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
    drawing = Drawing(domain, task, on_frame) if render else None  # refused before playing
    try:
        async with Run(config, run_dir, prefix="play") as run:
            actor = Actor.configured(
                run.models.for_role("agent"), domain, config.agent, config.models.agent
            )
            progress.status(f"playing {task.id} with {config.models.agent}...")
            on_step = drawing.step if drawing is not None else None
            episode = await actor.run(task, seed=config.run.seed, on_step=on_step)
            run.store.add_episode(domain.name, task, episode, label="play")
            frames = tuple(drawing.frames) if drawing is not None else ()
            return PlayResult(episode, task.id, run.path, run.ledger.summary(), frames)
    finally:
        if drawing is not None:
            drawing.close()


class Drawing:
    """A copy of the game that follows the agent's steps and draws each position."""

    def __init__(self, domain: Domain, task: Task, on_frame: Callable[[str], None] | None) -> None:
        self.env = open_env(domain, task)
        self.on_frame = on_frame
        self.frames: list[str] = []
        self.over = False
        try:
            self.draw = _drawing(domain, self.env)
            self.env.reset()
        except BaseException:
            self.env.close()
            raise
        self._show()

    def _show(self) -> None:
        frame = str(self.draw())
        self.frames.append(frame)
        if self.on_frame is not None:
            self.on_frame(frame)

    def step(self, step: Step) -> None:
        if not self.over:
            self.over = self.env.step(step.action).done
            self._show()

    def close(self) -> None:
        self.env.close()


def _drawing(domain: Domain, env: TextEnv) -> Callable[[], object]:
    """The environment's ``render`` (human drawing), or a usage error."""
    game = env.env if isinstance(env, StepLimit) else env
    if not isinstance(game, Drawable):
        raise UsageError(
            f"domain {domain.name!r} has no drawing for humans", hint="play without --render"
        )
    return game.render

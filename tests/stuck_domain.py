"""A toy domain whose games can hang: opening, resetting or a given step never returns until
released. Tests use it in-process (``StuckDomain``, released at teardown) and in subprocesses
(as the ``stuck`` domain registered by :func:`register`, configured through the environment)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from alma.domains import registry
from alma.domains.registry import DomainSpec
from alma.domains.toy import ToyDomain
from alma.types import Observation, Task, Transition


class StuckDomain(ToyDomain):
    """Toy games that hang at ``where`` ("open", "reset" or "step") on step ``at`` until
    ``release`` is set; ``marker``, when given, is written as the hang begins."""

    name = "stuck"

    def __init__(
        self,
        where: str = "",
        at: int = 1,
        marker: str = "",
        tasks_per_split: int = 50,
    ) -> None:
        super().__init__(tasks_per_split)
        self.where = where or os.environ.get("STUCK_WHERE", "step")
        self.at = at
        self.marker = marker or os.environ.get("STUCK_MARKER", "")
        self.release = threading.Event()
        self.closed: list[threading.Thread] = []  # the thread each close ran on
        self.used: set[threading.Thread] = set()  # the threads the games ran on

    def hang(self) -> None:
        self.used.add(threading.current_thread())
        if self.marker:
            Path(self.marker).write_text(str(os.getpid()))
        self.release.wait()

    def make_env(self, task: Task) -> StuckEnv:
        if self.where == "open":
            self.hang()
        return StuckEnv(self, task)


class StuckEnv:
    def __init__(self, domain: StuckDomain, task: Task) -> None:
        self.domain = domain
        self.game = ToyDomain.make_env(domain, task)
        self.steps = 0

    def reset(self) -> Observation:
        self.domain.used.add(threading.current_thread())
        if self.domain.where == "reset":
            self.domain.hang()
        return self.game.reset()

    def step(self, action: str) -> Transition:
        self.domain.used.add(threading.current_thread())
        self.steps += 1
        if self.domain.where == "step" and self.steps == self.domain.at:
            self.domain.hang()
        return self.game.step(action)

    def close(self) -> None:
        self.domain.closed.append(threading.current_thread())


def register() -> None:
    """Make ``stuck`` a known domain in this process (as a plugin would)."""
    spec = DomainSpec("stuck", "stuck_domain:StuckDomain", note="a test domain")
    registry._plugins = lambda: (spec,)  # type: ignore[assignment]

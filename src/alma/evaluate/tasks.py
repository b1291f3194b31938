"""Which tasks an evaluation plays: ``n`` tasks of a split drawn with the run's seed, split
into the build half and the deploy half (every design of a comparison gets the same)."""

from __future__ import annotations

import random

from alma.config import EvalConfig
from alma.domains.base import Domain
from alma.errors import UsageError
from alma.types import Split, Task

QUICK_TASKS = 5
DEFAULT_TASKS = 20

#: the build half and the deploy half
Selection = tuple[list[Task], list[Task]]


def select_tasks(
    domain: Domain, split: Split, settings: EvalConfig, *, quick: bool, seed: int
) -> Selection:
    """The build and deploy halves: ``n`` tasks of the split drawn with the seed."""
    tasks = list(domain.tasks(split))
    wanted = QUICK_TASKS if quick else settings.tasks or min(DEFAULT_TASKS, len(tasks))
    if wanted > len(tasks) or wanted < 2:
        raise UsageError(
            f"split {split} of {domain.name!r} has {len(tasks)} tasks; {wanted} asked",
            hint="ask for fewer with --tasks, or use another split",
        )
    random.Random(seed).shuffle(tasks)
    chosen = tasks[:wanted]
    half = wanted // 2
    return chosen[:half], chosen[half:]

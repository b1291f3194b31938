"""The shortest plan of every level of the ``balrog`` variant, or the proof that it has none.

The ``balrog`` variant keeps every level as the original draws it, as the benchmark does, so some
levels cannot be won within the step limit. The breadth-first solver labels them: an entry's
``plan`` is the shortest winning plan, or None when no plan of at most ``STEP_LIMIT`` moves
exists (``exhausted`` is then False) or the search passed its state cap before deciding
(``exhausted`` True). A task's ``optimal_steps`` is None for both, so that a report can give the
success rate over all tasks and over the winnable ones.

``levels-balrog.json`` next to this module holds the entries of every task the domain lists by
default; it is produced by ``python -m alma.domains.babaisai.balrog_catalogue`` and checked by
the tests (each entry keeps its level's fingerprint, so a change to the generator is noticed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from alma.domains.babaisai.balrog_levels import BalrogLevel, generate_balrog
from alma.domains.babaisai.catalogue import STEP_LIMIT, write_json_atomic
from alma.domains.babaisai.engine import MOVES
from alma.domains.babaisai.solver import shortest_balrog_plan

CATALOGUE_FILE = "levels-balrog.json"
MAX_STATES = 4_000_000
_LETTERS = {move: move[0].upper() for move in MOVES}
_MOVE_OF = {letter: move for move, letter in _LETTERS.items()}


@dataclass(frozen=True)
class BalrogEntry:
    """The solver's verdict on the level of one (family, seed)."""

    family: str
    seed: int
    fingerprint: str
    plan: str | None  # one letter a move (U, R, D, L); None: no plan within the limit
    states: int  # states the search reached
    exhausted: bool  # the state cap, not the step limit, ended a search with no plan
    outline: str  # the original's target plan
    seconds: float = 0.0  # CPU time of the search

    @property
    def optimal_steps(self) -> int | None:
        return None if self.plan is None else len(self.plan)

    def moves(self) -> list[str]:
        return [_MOVE_OF[letter] for letter in self.plan or ""]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> BalrogEntry:
        return BalrogEntry(**data)


def solve_level(
    family: str, seed: int, *, max_states: int = MAX_STATES
) -> tuple[BalrogLevel, BalrogEntry]:
    """The level of (family, seed) and the solver's verdict on it."""
    level = generate_balrog(family, seed)
    started = time.process_time()
    search = shortest_balrog_plan(level.board, level.state, STEP_LIMIT, max_states)
    entry = BalrogEntry(
        family=family,
        seed=seed,
        fingerprint=level.fingerprint(),
        plan=None if search.plan is None else "".join(_LETTERS[m] for m in search.plan),
        states=search.states,
        exhausted=search.exhausted,
        outline=level.outline,
        seconds=round(time.process_time() - started, 3),
    )
    return level, entry


@cache
def shipped_balrog() -> dict[str, BalrogEntry]:
    """The entries of the ``levels-balrog.json`` shipped with the package (empty if missing)."""
    resource = files("alma.domains.babaisai").joinpath(CATALOGUE_FILE)
    if not resource.is_file():
        return {}
    data = json.loads(resource.read_text(encoding="utf-8"))
    if data.get("step_limit") != STEP_LIMIT:
        return {}
    return {k: BalrogEntry.from_json(v) for k, v in data["levels"].items()}


def _solve(job: tuple[str, int]) -> dict[str, Any]:
    return solve_level(*job)[1].to_json()


def build(jobs: Iterable[tuple[str, int]], workers: int = 1) -> dict[str, dict[str, Any]]:
    """Entries for every (family, seed) in ``jobs``, searched in ``workers`` processes."""
    jobs = list(jobs)
    found: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for (family, seed), entry in zip(jobs, pool.map(_solve, jobs), strict=True):
            found[f"{family}/{seed}"] = entry
            plan = entry["plan"]
            print(
                f"{family:<58} seed {seed:>6}  "
                f"{'-' if plan is None else len(plan):>2} moves  {entry['states']:>8} states  "
                f"{entry['seconds']:7.2f} s",
                file=sys.stderr,
                flush=True,
            )
    return found


def main(argv: list[str] | None = None) -> None:
    """Solve every default task's level of the ``balrog`` variant and write the catalogue."""
    from alma.domains.babaisai.domain import default_jobs

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(CATALOGUE_FILE))
    args = parser.parse_args(argv)
    levels = build(default_jobs(), args.workers)
    write_json_atomic(args.out, {"step_limit": STEP_LIMIT, "levels": levels})
    print(f"wrote {len(levels)} levels to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

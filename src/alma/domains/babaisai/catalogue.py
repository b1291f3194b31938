"""Which draw of each (family, seed) is played, proven solvable, with its shortest plan.

A level is drawn with :func:`~alma.domains.babaisai.families.generate`; the breadth-first solver
then looks for a plan of at most ``STEP_LIMIT`` moves. When it finds none (or the search grows
past its state cap) the draw is rejected and the next draw of the same seed is tried, and the
rejection is recorded. :func:`find_level` does that work; it takes from milliseconds to seconds.

``levels.json`` next to this module holds the result for every task the domain lists by default,
so that listing tasks costs nothing and every task carries its plan length. It is produced by
``python -m alma.domains.babaisai.catalogue`` and checked by the tests: each entry keeps the
fingerprint of its level, so a change to the generator that alters a level is noticed (the entry
is then ignored and the level searched again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from alma.domains.babaisai.engine import MOVES
from alma.domains.babaisai.families import Level, generate
from alma.domains.babaisai.solver import MAX_STATES, shortest_plan

STEP_LIMIT = 20
MAX_DRAWS = 30
CATALOGUE_FILE = "levels.json"
_LETTERS = {move: move[0].upper() for move in MOVES}
_MOVE_OF = {letter: move for move, letter in _LETTERS.items()}


@dataclass(frozen=True)
class Entry:
    """The verified level of one (family, seed)."""

    family: str
    seed: int
    draw: int
    fingerprint: str
    plan: str  # one letter a move: U, R, D, L
    states: int  # states the search reached before finding the plan
    outline: str
    rejected: list[dict[str, Any]] = field(default_factory=list)  # earlier draws and why

    @property
    def optimal_steps(self) -> int:
        return len(self.plan)

    def moves(self) -> list[str]:
        return [_MOVE_OF[letter] for letter in self.plan]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Entry:
        return Entry(**data)


def find_level(family: str, seed: int, *, max_states: int = MAX_STATES) -> tuple[Level, Entry]:
    """The first draw of (family, seed) that the solver wins within the step limit.

    Raises:
        RuntimeError: when ``MAX_DRAWS`` draws in a row have no plan.
    """
    rejected: list[dict[str, Any]] = []
    for draw in range(MAX_DRAWS):
        level = generate(family, seed, draw)
        search = shortest_plan(level.board, level.state, STEP_LIMIT, max_states)
        if search.plan is None:
            reason = (
                f"search passed {max_states} states"
                if search.exhausted
                else f"no plan within {STEP_LIMIT} moves"
            )
            rejected.append({"draw": draw, "reason": reason, "states": search.states})
            continue
        entry = Entry(
            family=family,
            seed=seed,
            draw=draw,
            fingerprint=level.fingerprint(),
            plan="".join(_LETTERS[m] for m in search.plan),
            states=search.states,
            outline=level.outline,
            rejected=rejected,
        )
        return level, entry
    raise RuntimeError(f"no solvable {family} level for seed {seed} in {MAX_DRAWS} draws")


def key(family: str, seed: int) -> str:
    return f"{family}/{seed}"


@cache
def shipped() -> dict[str, Entry]:
    """The entries of the ``levels.json`` shipped with the package (empty if it is missing)."""
    resource = files("alma.domains.babaisai").joinpath(CATALOGUE_FILE)
    if not resource.is_file():
        return {}
    data = json.loads(resource.read_text(encoding="utf-8"))
    if data.get("step_limit") != STEP_LIMIT:
        return {}
    return {k: Entry.from_json(v) for k, v in data["levels"].items()}


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file and a rename (never half written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
            out.write("\n")
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the file is for everyone
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _find(job: tuple[str, int]) -> tuple[dict[str, Any], float]:
    started = time.process_time()
    _level, entry = find_level(*job)
    return entry.to_json(), time.process_time() - started


def build(jobs: Iterable[tuple[str, int]], workers: int = 1) -> dict[str, dict[str, Any]]:
    """Entries for every (family, seed) in ``jobs``, searched in ``workers`` processes."""
    jobs = list(jobs)
    found: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for (family, seed), (entry, seconds) in zip(jobs, pool.map(_find, jobs), strict=True):
            found[key(family, seed)] = entry
            print(
                f"{family:<58} seed {seed:>6}  draw {entry['draw']}  "
                f"{len(entry['plan']):>2} moves  {entry['states']:>7} states  {seconds:6.2f} s",
                file=sys.stderr,
                flush=True,
            )
    return found


def main(argv: list[str] | None = None) -> None:
    """Search every default task's level again and write ``levels.json`` next to this module."""
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

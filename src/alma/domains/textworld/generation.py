"""Making TextWorld games from a seed, checking them, and keeping them in the user cache.

A game is made by one of TextWorld's challenge generators, compiled to a ``.z8`` story file,
and then checked: its walkthrough must fit the step limit and must win the compiled game when
played. Only then is it cached::

    <cache>/textworld/<settings key>/<seed>.z8     the story file
    <cache>/textworld/<settings key>/<seed>.json   TextWorld's game data (needed to play it)

Both are written into a temporary folder next to them and renamed into place, the ``.z8``
last, so a ``.z8`` in the cache is always complete. A seed that cannot make a usable game (the
generator gives up, its quest search runs past :data:`QUEST_SEARCH_BUDGET`, or the solution is
too long for the step limit or too short for the settings) is recorded as ``<seed>.failed.json``
and the task moves on to its next candidate seed
(:func:`~alma.domains.textworld.families.candidate_seeds`). Each of these outcomes depends on the
seed only, so every machine makes the same game for the same task, and the markers let the next
run find the replacement without trying the failed seed again.

TextWorld's generator keeps state at module level (its parsers among others), so it cannot run
next to another generation or a game being loaded in the same process. By default each game is
therefore made in a child process (:data:`ISOLATED`); :meth:`TextWorldDomain.prepare` runs a
pool of such processes. Loading games in this process is serialised by
:data:`~alma.domains.textworld.env.TEXTWORLD_LOCK`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import textworld
import textworld.challenges
from textworld.generator import compile_game
from textworld.generator.chaining import ChainingOptions
from textworld.generator.inform7.world2inform7 import CouldNotCompileGameError

from alma.domains.textworld.env import TEXTWORLD_LOCK, play_commands
from alma.domains.textworld.families import (
    STEP_LIMIT,
    GameSettings,
    candidate_seeds,
    settings_name,
    settings_named,
    textworld_version,
)
from alma.errors import AlmaError
from alma.paths import cache_dir

log = logging.getLogger("alma.domains.textworld")

# Candidate actions TextWorld's quest search may examine before a seed is given up. Most seeds
# need a few thousand; a few wander for hundreds of thousands (minutes). Counting steps, not
# seconds, keeps the outcome the same on every machine.
QUEST_SEARCH_BUDGET = 20_000

# Make each game in a child process (True), or in this one, holding TEXTWORLD_LOCK (False: for
# processes that do nothing else, such as prepare()'s workers, and for tests).
ISOLATED = True


class GenerationFailed(Exception):
    """This seed makes no usable game; the reason is the message."""


@dataclass(frozen=True)
class CachedGame:
    """A playable game in the cache: the seed that made it and its story file."""

    seed: int
    path: Path
    skipped: tuple[tuple[int, str], ...] = ()  # seeds tried before it, with why they failed


class _BudgetedChaining(ChainingOptions):  # type: ignore[misc]
    """TextWorld's chaining options, giving up after a fixed number of candidate actions."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget
        self.checked = 0

    def check_action(self, state: Any, action: Any) -> bool:
        self.checked += 1
        if self.checked > self.budget:
            raise GenerationFailed(f"the quest search examined more than {self.budget} actions")
        return bool(super().check_action(state, action))


def game_folder(settings: GameSettings) -> Path:
    return cache_dir("textworld") / settings.key


def make_game(settings: GameSettings, seed: int) -> Any:
    """The TextWorld ``Game`` of ``settings`` and ``seed``, not yet compiled or checked.

    Raises:
        GenerationFailed: the generator cannot make a game from this seed.
    """
    options = textworld.GameOptions()
    options.chaining = _BudgetedChaining(QUEST_SEARCH_BUDGET)
    options.seeds = seed
    options.grammar.only_last_action = settings.last_action_goal
    make = textworld.challenges.CHALLENGES[settings.challenge][1]
    try:
        with warnings.catch_warnings():  # notes that the grammar lacks variety: nothing to do
            warnings.simplefilter("ignore", textworld.GenerationWarning)
            game = make(settings.challenge_settings(), options)
    except CouldNotCompileGameError as exc:  # some generators compile to check their walkthrough
        raise _compile_error(exc) from exc
    except (GenerationFailed, MemoryError, OSError):
        raise
    except Exception as exc:  # the generator's own ways of giving up on a seed
        raise GenerationFailed(f"{type(exc).__name__}: {exc}".strip()) from exc
    walkthrough = game.walkthrough
    if not walkthrough:
        raise GenerationFailed("the game has no walkthrough")
    steps = f"{len(walkthrough)} step{'' if len(walkthrough) == 1 else 's'}"
    if len(walkthrough) > STEP_LIMIT:
        raise GenerationFailed(f"its walkthrough takes {steps} (> {STEP_LIMIT})")
    if len(walkthrough) < settings.min_solution:
        raise GenerationFailed(f"its walkthrough takes only {steps} (< {settings.min_solution})")
    game.metadata["alma"] = {
        "settings": settings_name(settings),
        "seed": seed,
        "quest_search_steps": options.chaining.checked,
    }
    return game


def _compile_error(exc: Exception) -> AlmaError:
    lines = str(exc).strip().splitlines()
    return AlmaError(
        f"TextWorld could not compile a game: {lines[0] if lines else type(exc).__name__}",
        hint="check that the textworld package is installed completely (its Inform 7 tools)",
    )


def _compile(game: Any, target: Path) -> None:
    options = textworld.GameOptions()
    options.path = str(target)
    options.force_recompile = True
    try:
        compile_game(game, options)
    except CouldNotCompileGameError as exc:
        raise _compile_error(exc) from exc


def generate(settings: GameSettings, seed: int, folder: Path) -> Path:
    """Make, compile and check the game of ``seed``; move it into ``folder`` atomically.

    Raises:
        GenerationFailed: the seed makes no usable game (nothing is written).
        AlmaError: the game could not be compiled (a broken installation, not the seed).
    """
    with TEXTWORLD_LOCK:
        return _generate(settings, seed, folder)


def _generate(settings: GameSettings, seed: int, folder: Path) -> Path:
    with warnings.catch_warnings():
        # the Z-machine back end's note that it cannot read the score of TextWorld's games
        # (TextWorld reads it itself)
        warnings.simplefilter("ignore", UserWarning)
        return _make_and_check(settings, seed, folder)


def _make_and_check(settings: GameSettings, seed: int, folder: Path) -> Path:
    game = make_game(settings, seed)
    folder.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{seed}-", dir=folder))
    try:
        story = workdir / f"{seed}.z8"
        _compile(game, story)
        outcome = play_commands(story, list(game.walkthrough))
        if not outcome.won:
            raise GenerationFailed(
                f"its walkthrough does not win the compiled game ({outcome.reason})"
            )
        os.replace(workdir / f"{seed}.json", folder / f"{seed}.json")
        os.replace(story, folder / f"{seed}.z8")  # last: a .z8 in the cache is complete
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return folder / f"{seed}.z8"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1)
    os.replace(temp, path)


def _failure_reason(marker: Path) -> str:
    try:
        return str(json.loads(marker.read_text(encoding="utf-8")).get("reason", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def find_cached(settings: GameSettings, seed: int) -> CachedGame | None:
    """The task's game if the cache already settles it (no generation), else None."""
    folder = game_folder(settings)
    skipped: list[tuple[int, str]] = []
    for candidate in candidate_seeds(seed):
        story = folder / f"{candidate}.z8"
        if story.is_file():
            return CachedGame(candidate, story, tuple(skipped))
        marker = folder / f"{candidate}.failed.json"
        if not marker.is_file():
            return None
        skipped.append((candidate, _failure_reason(marker)))
    return None


@dataclass(frozen=True)
class Settled:
    """What :func:`settle` found or did for one task."""

    game: CachedGame
    failed: tuple[tuple[int, str], ...] = ()  # seeds found unusable just now, with reasons
    made_in: float | None = None  # seconds spent generating, when the game was made just now


def settle(settings: GameSettings, seed: int, folder: Path) -> Settled:
    """The task's game from ``folder``, generating candidates in this process until one works.

    Only for a process (or a moment) where nothing else uses TextWorld: see :func:`ensure_game`.
    """
    skipped: list[tuple[int, str]] = []
    failed: list[tuple[int, str]] = []
    started = time.perf_counter()
    for candidate in candidate_seeds(seed):
        story = folder / f"{candidate}.z8"
        marker = folder / f"{candidate}.failed.json"
        if story.is_file():
            return Settled(CachedGame(candidate, story, tuple(skipped)), tuple(failed))
        if marker.is_file():
            skipped.append((candidate, _failure_reason(marker)))
            continue
        try:
            generate(settings, candidate, folder)
        except GenerationFailed as exc:
            reason = str(exc)
            record = {
                "settings": settings_name(settings),
                "seed": candidate,
                "reason": reason,
                "textworld": textworld_version(),
            }
            _write_json(marker, record)
            skipped.append((candidate, reason))
            failed.append((candidate, reason))
            continue
        game = CachedGame(candidate, story, tuple(skipped))
        return Settled(game, tuple(failed), time.perf_counter() - started)
    tried = ", ".join(str(s) for s, _ in skipped)
    raise AlmaError(
        f"no usable TextWorld {settings_name(settings)} game from seed {seed} "
        f"or its replacements ({tried})",
        hint=f"see the *.failed.json files in {folder}",
    )


def settle_by_name(name: str, seed: int, folder: str) -> Settled:
    """:func:`settle` by settings name (what child and worker processes are sent)."""
    settings = settings_named(name)
    if settings is None:
        raise AlmaError(f"unknown TextWorld settings {name!r}")
    return settle(settings, seed, Path(folder))


def _settle_in_child(settings: GameSettings, seed: int, folder: Path) -> Settled:
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            future = pool.submit(settle_by_name, settings_name(settings), seed, str(folder))
            return future.result()
    except BrokenProcessPool as exc:
        raise AlmaError(
            f"the process generating TextWorld {settings_name(settings)} seed {seed} died",
            hint="it may have run out of memory; try again",
        ) from exc


def report(settings: GameSettings, settled: Settled) -> None:
    """Logs what :func:`settle` did: a warning per seed given up, a line per game made."""
    name = settings_name(settings)
    for seed, reason in settled.failed:
        log.warning("TextWorld %s: seed %d makes no usable game (%s); skipped", name, seed, reason)
    if settled.made_in is not None:
        log.info(
            "generated TextWorld %s seed %d in %.1f s", name, settled.game.seed, settled.made_in
        )


_locks: dict[tuple[str, int], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(settings: GameSettings, seed: int) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((settings.key, seed), threading.Lock())


def ensure_game(settings: GameSettings, seed: int) -> CachedGame:
    """The task's game: from the cache, or generated now (then cached).

    Seeds that make no usable game are recorded and skipped with a warning; the first candidate
    that works is the game. The generation runs in a child process (see :data:`ISOLATED`);
    threads asking for the same game wait for one generation.
    """
    cached = find_cached(settings, seed)
    if cached is not None:
        return cached
    with _lock(settings, seed):
        folder = game_folder(settings)
        if ISOLATED:
            settled = _settle_in_child(settings, seed, folder)
        else:
            with TEXTWORLD_LOCK:
                settled = settle(settings, seed, folder)
        report(settings, settled)
        return settled.game


def generate_many(
    jobs: Sequence[tuple[GameSettings, int]], *, workers: int | None, progress: bool
) -> list[Settled]:
    """:func:`settle` for each (settings, seed) in a pool of ``workers`` processes (default: one
    per core), with progress (see :mod:`alma.progress`); the results in the order of ``jobs``."""
    from alma.progress import Counter

    if not jobs:
        return []
    count = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    bar = Counter("generating TextWorld games", len(jobs), enabled=progress)
    results: dict[int, Settled] = {}
    context = multiprocessing.get_context("spawn")
    with bar, ProcessPoolExecutor(count, mp_context=context) as pool:
        futures: dict[Future[Settled], int] = {
            pool.submit(settle_by_name, settings_name(s), seed, str(game_folder(s))): index
            for index, (s, seed) in enumerate(jobs)
        }
        try:
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                report(jobs[index][0], results[index])
                bar.advance()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[index] for index in range(len(jobs))]

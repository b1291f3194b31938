"""The ``alfworld`` domain: household tasks played in ALFWorld's text engine."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from alma.domains.alfworld.dependencies import (
    DATA_ENV,
    DEFAULT_DATA_DIR,
    load_engine,
    load_solver,
    user_data_setting,
)
from alma.domains.alfworld.generated import SEED_STRIDE, Game, GeneratedTasks
from alma.domains.alfworld.official import DATA_FOLDER, OfficialTasks, resolve
from alma.domains.base import PrepareReport
from alma.errors import ConfigError, UsageError
from alma.progress import Counter
from alma.types import SPLITS, Split, Task

if TYPE_CHECKING:
    from alma.domains.alfworld.engine import AlfWorldEnv

STEP_LIMIT = 30
Source = Literal["auto", "official", "generated"]


def _read_text(name: str) -> str:
    text = files("alma.domains.alfworld").joinpath(name).read_text(encoding="utf-8")
    return text.strip().format(step_limit=STEP_LIMIT)


DESCRIPTION = _read_text("description.txt")
INSTRUCTIONS = _read_text("instructions.txt")
_SOURCE_NOTES = {
    "generated": _read_text("source_generated.txt"),
    "official": _read_text("source_official.txt"),
}


class AlfWorldDomain:
    """ALFWorld's household tasks (implements :class:`alma.domains.base.Domain`).

    Where tasks come from (``source``):

    * ``"official"``: ALFWorld's game files under ``data_dir`` or ``$ALFWORLD_DATA`` (the folder
      holding ``json_2.1.1/``); a wrong or incomplete folder is a :class:`ConfigError`.
    * ``"generated"``: tasks generated locally from ALFWorld's shipped resources,
      ``tasks_per_split`` per split (see :mod:`alma.domains.alfworld.generated`).
    * ``"auto"`` (default): official when ``data_dir`` or ``$ALFWORLD_DATA`` is set, or when the
      data sits in ALFWorld's default folder (``~/.cache/alfworld``); generated otherwise.

    Every task is played through :class:`~alma.domains.alfworld.engine.AlfWorldEnv`; the step
    limit is 30 commands, as in ALMA.
    """

    name: str = "alfworld"
    step_limit: int = STEP_LIMIT
    instructions: str = INSTRUCTIONS

    def __init__(
        self,
        tasks_per_split: int = 60,
        data_dir: str | Path | None = None,
        source: Source = "auto",
    ) -> None:
        if not 0 <= tasks_per_split <= SEED_STRIDE:
            raise ConfigError(
                f"alfworld tasks_per_split must be between 0 and {SEED_STRIDE}, "
                f"not {tasks_per_split}"
            )
        if source not in ("auto", "official", "generated"):
            raise ConfigError(
                f"unknown alfworld source {source!r}", hint="use auto, official or generated"
            )
        self._source: OfficialTasks | GeneratedTasks
        setting, origin = (str(data_dir), "data_dir") if data_dir is not None else (None, DATA_ENV)
        if setting is None and source != "generated":
            setting = user_data_setting()
        if setting is None and source == "auto" and (DEFAULT_DATA_DIR / DATA_FOLDER).is_dir():
            setting, origin = str(DEFAULT_DATA_DIR), "default folder"
        if source == "official" and setting is None:
            raise ConfigError(
                "the official ALFWorld data was asked for, but no folder is given",
                hint=f"set {DATA_ENV} or pass data_dir",
            )
        if setting is not None and source != "generated":
            self._source = OfficialTasks(resolve(setting, origin=origin))
        else:
            self._source = GeneratedTasks(tasks_per_split, STEP_LIMIT)
        self.description = f"{DESCRIPTION}\n\n{_SOURCE_NOTES[self._source.source]}"

    # ------------------------------------------------------------------ Domain

    @property
    def source(self) -> str:
        """``"official"`` or ``"generated"``."""
        return self._source.source

    @property
    def details(self) -> dict[str, Any]:
        """Shown by ``alma domains``: where the tasks come from."""
        return self._source.details()

    def tasks(self, split: Split) -> tuple[Task, ...]:
        if split not in SPLITS:
            raise UsageError(f"unknown split {split!r}", hint=f"choose one of {', '.join(SPLITS)}")
        return self._source.tasks(split)

    def make_env(self, task: Task) -> AlfWorldEnv:
        info: dict[str, Any] = {"source": self.source}
        if isinstance(self._source, GeneratedTasks):
            game = self._source.game(task)
            data = game.data
            info["attempt"] = game.attempt
        else:
            data = self._source.game(task)
        env: AlfWorldEnv = load_engine().AlfWorldEnv(data, info=info)
        return env

    # ------------------------------------------------------------------ extras

    def solve(self, task: Task) -> list[str]:
        """A list of commands that wins ``task``.

        Generated tasks: the walkthrough checked when the game was made. Official tasks: the
        walkthrough in the game file, else fast-downward's plan (which can take a while).
        """
        if isinstance(self._source, GeneratedTasks):
            return list(self._source.game(task).walkthrough)
        data = self._source.game(task)
        walkthrough = data.get("walkthrough")
        if isinstance(walkthrough, list) and walkthrough:
            return [str(command) for command in walkthrough]
        plan: list[str] = load_solver().fast_downward_plan(data)
        return plan

    def generated_game(self, task: Task) -> Game:
        """A generated task's game with how it was made: attempt, replaced attempts, plan."""
        if not isinstance(self._source, GeneratedTasks):
            raise UsageError(
                "these ALFWorld tasks are official, not generated", hint="use game(task)"
            )
        return self._source.game(task)

    def game(self, task: Task) -> dict[str, Any]:
        """The task's game file content (``game.tw-pddl``), generating it if needed."""
        if isinstance(self._source, GeneratedTasks):
            return dict(self._source.game(task).data)
        return self._source.game(task)

    def prepare(
        self,
        splits: Split | Iterable[Split | Task] | None = None,
        *,
        progress: bool = True,
    ) -> PrepareReport:
        """Generate (or find in the cache) every game of ``splits`` (a split, several, a list of
        tasks, or by default all), with a progress bar.

        Nothing to do for the official data. Returns counts and the tasks whose first initial
        state failed its check and was replaced.
        """
        import time

        report = PrepareReport()
        if not isinstance(self._source, GeneratedTasks):
            return report
        source = self._source
        started = time.perf_counter()
        chosen = [splits] if isinstance(splits, str) else list(splits or SPLITS)
        tasks: Sequence[Task] = [
            t for s in chosen for t in ([s] if isinstance(s, Task) else self.tasks(s))
        ]
        with Counter("alfworld preparing games", len(tasks), enabled=progress) as bar:
            for task in tasks:
                if source.cached(task):
                    report.cached += 1
                else:
                    report.generated += 1
                game = source.game(task)
                if game.replaced:
                    report.replaced[task.id] = list(game.replaced)
                bar.advance()
        report.seconds = time.perf_counter() - started
        return report

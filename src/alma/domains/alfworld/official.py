"""The official task source: ALFWorld's game files, when the user has downloaded them.

``alfworld-download`` puts them under ``$ALFWORLD_DATA/json_2.1.1/``, one folder per split
(``train``, ``valid_seen``, ``valid_unseen``), then one per task
(``<task type>-<object>-<movable receptacle>-<receptacle or lamp>-<floor plan>``), then one per
trial (``trial_T2019...``) holding ``game.tw-pddl`` and ``traj_data.json``. They map to our splits
as ALMA and the literature use them: train, eval_in_distribution (``valid_seen``: rooms seen in
training) and eval_out_of_distribution (``valid_unseen``: new rooms).

Like ALFWorld's own loader, tasks with a movable receptacle or sliced objects, and task types
other than the six, are left out. Listing reads folder names only, so it stays cheap; the task's
goal is stated from its folder name with the first sentence of ALFWorld's goal library, while
the game itself shows the sentence written into its grammar.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alma.domains.alfworld.dependencies import DATA_ENV, goal_library
from alma.domains.alfworld.generator import TASK_TYPES
from alma.errors import ConfigError, UnknownDomainError, UsageError
from alma.types import Split, Task

DATA_FOLDER = "json_2.1.1"
GAME_FILE = "game.tw-pddl"
SPLIT_FOLDERS: dict[Split, str] = {
    "train": "train",
    "eval_in_distribution": "valid_seen",
    "eval_out_of_distribution": "valid_unseen",
}
_HINT = (
    f"point {DATA_ENV} at the folder holding {DATA_FOLDER}/ (fetch it with `alfworld-download`), "
    f"or unset {DATA_ENV} to use generated tasks"
)


def resolve(setting: str | Path, *, origin: str = DATA_ENV) -> Path:
    """The ``json_2.1.1`` folder under ``setting``; raises ConfigError naming what is missing."""
    given = Path(setting).expanduser()
    label = f"{origin}={setting}"
    if not given.is_dir():
        raise ConfigError(f"{label}: no such folder", hint=_HINT)
    root = given / DATA_FOLDER if (given / DATA_FOLDER).is_dir() else given
    if not any((root / folder).is_dir() for folder in SPLIT_FOLDERS.values()):
        raise ConfigError(
            f"{label}: no {DATA_FOLDER} folder (nor train, valid_seen, valid_unseen in it)",
            hint=_HINT,
        )
    missing = []
    for folder in SPLIT_FOLDERS.values():
        if not (root / folder).is_dir():
            missing.append(f"{folder}/ is missing")
        elif next(_trials(root / folder), None) is None:
            missing.append(f"{folder}/ has no {GAME_FILE} files")
    if missing:
        shown = root.relative_to(given.parent) if root != given else Path(given.name)
        raise ConfigError(f"{label}: in {shown}, {', '.join(missing)}", hint=_HINT)
    return root


@dataclass(frozen=True)
class _TaskFolder:
    task_type: str
    object_type: str
    target: str  # the receptacle type, or the lamp for look_at_obj_in_light
    floor_plan: int


def _parse(name: str) -> _TaskFolder | None:
    """``pick_heat_then_place_in_recep-Egg-None-Fridge-13`` -> its parts, or None."""
    parts = name.split("-")
    if len(parts) != 5 or parts[0] not in TASK_TYPES or parts[2] != "None":
        return None
    if "Sliced" in name or not parts[4].isdigit():
        return None
    return _TaskFolder(parts[0], parts[1], parts[3], int(parts[4]))


def _trials(split_dir: Path) -> Iterator[tuple[Path, _TaskFolder]]:
    """The trial folders of a split that hold a game of one of the six task types, sorted."""
    for task_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        parsed = _parse(task_dir.name)
        if parsed is None or "movable" in task_dir.name:
            continue
        for trial in sorted(p for p in task_dir.iterdir() if p.is_dir()):
            if (trial / GAME_FILE).is_file():
                yield trial, parsed


def goal_sentence(folder: _TaskFolder) -> str:
    template: str = goal_library()[folder.task_type]["templates"][0]
    is_light = folder.task_type == "look_at_obj_in_light"
    return template.format(
        obj=folder.object_type.lower(),
        recep="" if is_light else folder.target.lower(),
        toggle=folder.target.lower() if is_light else "",
        mrecep="",
    )


class OfficialTasks:
    """Tasks of the official ALFWorld data under ``root`` (a ``json_2.1.1`` folder)."""

    source = "official"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tasks: dict[Split, tuple[Task, ...]] = {}

    def details(self) -> dict[str, Any]:
        return {
            "source": "official",
            "note": "ALFWorld's own game files: train, valid_seen, valid_unseen",
            "data": str(self.root),
            "splits": dict(SPLIT_FOLDERS),
        }

    def tasks(self, split: Split) -> tuple[Task, ...]:
        if split not in self._tasks:
            folder = SPLIT_FOLDERS[split]
            tasks = []
            for trial, parsed in _trials(self.root / folder):
                relative = trial.relative_to(self.root).as_posix()
                task_id = f"alfworld-{folder}-{trial.parent.name}-{trial.name}"
                params = {
                    "source": "official",
                    "path": relative,
                    "task_type": parsed.task_type,
                    "object_type": parsed.object_type,
                    "target_type": parsed.target,
                    "floor_plan": parsed.floor_plan,
                }
                tasks.append(Task(task_id, split, goal_sentence(parsed), 0, params))
            self._tasks[split] = tuple(tasks)
        return self._tasks[split]

    def game(self, task: Task) -> dict[str, Any]:
        """The content of the task's ``game.tw-pddl``."""
        relative = task.params.get("path")
        if task.params.get("source") != "official" or not isinstance(relative, str):
            raise UnknownDomainError(
                f"task {task.id!r} is not an official ALFWorld task",
                hint="take tasks from AlfWorldDomain.tasks(split)",
            )
        path = self.root / relative / GAME_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}", hint=_HINT) from exc
        if not isinstance(data, dict) or not {"pddl_domain", "grammar", "pddl_problem"} <= set(
            data
        ):
            raise ConfigError(f"{path} is not an ALFWorld game file", hint=_HINT)
        if data.get("solvable") is False:
            raise UsageError(
                f"{path} is marked unsolvable by ALFWorld",
                hint="ALFWorld's own loader skips such games; pick another task",
            )
        if "UNKNOWN GOAL" in data["grammar"]:  # a game file that was never given its goal
            data["grammar"] = data["grammar"].replace("UNKNOWN GOAL", task.description)
        return dict(data)

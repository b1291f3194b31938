"""Lazy access to ALFWorld and TextWorld, with one clear error when they are missing.

Importing ``alfworld`` sets ``ALFWORLD_DATA`` in the process environment to its default folder
when the variable is unset; :func:`user_data_setting` reads the variable as the user left it, so
the domain can tell "not configured" from "configured".
"""

from __future__ import annotations

import importlib
import os
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from alma.errors import MissingDependencyError

DATA_ENV = "ALFWORLD_DATA"
#: Where ``alfworld-download`` puts the official data when ALFWORLD_DATA is unset.
DEFAULT_DATA_DIR = Path("~/.cache/alfworld").expanduser()


def user_data_setting() -> str | None:
    """``$ALFWORLD_DATA`` unless it is only the default that importing alfworld fills in."""
    value = os.environ.get(DATA_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if path == DEFAULT_DATA_DIR and not (path / "json_2.1.1").exists():
        return None
    return value


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        from alma.domains.registry import domain_spec

        missing = (exc.name or name).split(".")[0]
        raise MissingDependencyError(
            f"the alfworld domain needs {missing!r}, which does not import ({exc})",
            hint=domain_spec("alfworld").install,
        ) from exc


@cache
def alfworld_constants() -> Any:
    """``alfworld.gen.constants``: ALFRED's object and receptacle tables."""
    return _import("alfworld.gen.constants")


@cache
def goal_library() -> dict[str, dict[str, Any]]:
    """``alfworld.gen.goal_library.gdict``: PDDL goals and goal sentences per task type."""
    gdict: dict[str, dict[str, Any]] = _import("alfworld.gen.goal_library").gdict
    return gdict


@cache
def logic_files() -> tuple[str, str]:
    """The PDDL domain and the TextWorld grammar that ALFWorld ships."""
    info = _import("alfworld.info")
    domain = Path(info.ALFRED_PDDL_PATH).read_text(encoding="utf-8")
    grammar = Path(info.ALFRED_TWL2_PATH).read_text(encoding="utf-8")
    return domain, grammar


def alfworld_version() -> str:
    version: str = _import("alfworld.info").__version__
    return version


def load_engine() -> ModuleType:
    """:mod:`alma.domains.alfworld.engine`, which imports TextWorld, ALFWorld and fast-downward."""
    return _import("alma.domains.alfworld.engine")


def load_solver() -> ModuleType:
    """:mod:`alma.domains.alfworld.solver` (it needs the engine)."""
    return _import("alma.domains.alfworld.solver")

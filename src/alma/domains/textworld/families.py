"""Which TextWorld games each split holds: game families, their generator settings, and seeds.

A :class:`GameSettings` names one of TextWorld's challenge generators (``tw-coin_collector``,
``tw-treasure_hunter``, ``tw-cooking``) with fixed settings. A task is one settings value plus a
seed; the split plan below says which settings each split cycles through and where its seeds
start. Nothing here imports TextWorld, so listing tasks stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from alma.domains.registry import TEXTWORLD
from alma.types import Split

TEXTWORLD_PINNED = TEXTWORLD.partition("==")[2]  # the version whose games the task ids stand for
STEP_LIMIT = 80
# Raise when a change to generation.py makes other seeds pass or fail (budget, checks): the
# games cached under the old rules are then left alone instead of standing for the wrong tasks.
RULES_VERSION = 1

# Seeds: task ``i`` of a split plays seed ``first + i``; a seed that cannot make a game is
# replaced by ``seed + k * REPLACEMENT_STRIDE`` (k = 1, 2, ...). With at most MAX_TASKS tasks a
# split and MAX_REPLACEMENTS tries, no two tasks, in one split or two, can ever share a seed.
SPLIT_SEED_STRIDE = 100_000
REPLACEMENT_STRIDE = 1_000
MAX_REPLACEMENTS = 20
MAX_TASKS = REPLACEMENT_STRIDE
DEFAULT_TASKS = 50


@dataclass(frozen=True)
class GameSettings:
    """One TextWorld challenge generator with fixed settings.

    ``options`` are the challenge's own settings (as ``tw-make`` takes them), sorted pairs so
    the value is hashable. ``last_action_goal`` asks TextWorld's grammar to state only the last
    step of the quest as the game's objective (where the treasure is), not the whole route.
    A game whose walkthrough is shorter than ``min_solution`` commands is not used.
    """

    family: str
    challenge: str
    options: tuple[tuple[str, Any], ...]
    label: str  # a short readable name of the settings, used in the cache key
    summary: str  # one line for people
    last_action_goal: bool = False
    min_solution: int = 1

    @property
    def key(self) -> str:
        """The cache folder of these settings: family, settings, TextWorld's version and the
        version of the rules that accept or reject a seed."""
        return f"{self.family}-{self.label}-tw{textworld_version()}-r{RULES_VERSION}"

    def challenge_settings(self) -> dict[str, Any]:
        return dict(self.options)

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "challenge": self.challenge,
            "settings": self.challenge_settings(),
            "summary": self.summary,
        }


def textworld_version() -> str:
    """The installed TextWorld's version (read from its metadata, without importing it)."""
    try:
        return version("textworld")
    except PackageNotFoundError:
        return "missing"


COIN_COLLECTOR = GameSettings(
    "coin_collector",
    "tw-coin_collector",
    (("level", 220),),
    "level220",
    "a chain of 20 rooms with 40 dead-end side rooms; the coin lies at the far end",
    last_action_goal=True,
)
TREASURE_HUNTER = GameSettings(
    "treasure_hunter",
    "tw-treasure_hunter",
    (("level", 30),),
    "level30",
    "20 rooms with locked doors and containers; find the named object, take nothing else",
    last_action_goal=True,
    min_solution=5,  # TextWorld sometimes puts the object a step or two away: no hunt at all
)
COOKING = GameSettings(
    "cooking",
    "tw-cooking",
    (
        ("cook", True),
        ("cut", True),
        ("go", 12),
        ("open", True),
        ("recipe", 5),
        ("recipe_seed", 0),
        ("split", "train"),
        ("take", 5),
    ),
    "recipe5-take5-go12-open-cook-cut-trainfoods",
    "12 rooms; read the recipe, fetch 5 ingredients, slice/dice/chop and grill/fry/roast them",
)
# out of distribution: harder versions of two families
COIN_COLLECTOR_LONG = GameSettings(
    "coin_collector",
    "tw-coin_collector",
    (("level", 230),),
    "level230",
    "a chain of 30 rooms with 60 dead-end side rooms; the coin lies at the far end",
    last_action_goal=True,
)
COOKING_SMALL_BAG = GameSettings(
    "cooking",
    "tw-cooking",
    (
        ("cook", True),
        ("cut", True),
        ("drop", True),
        ("go", 12),
        ("open", True),
        ("recipe", 5),
        ("recipe_seed", 0),
        ("split", "test"),
        ("take", 5),
    ),
    "recipe5-take5-go12-open-cook-cut-drop-testfoods",
    "as cooking, but the inventory is limited and the foods and preparations are unseen ones",
)


@dataclass(frozen=True)
class SplitPlan:
    infix: str  # in the task ids: textworld-<infix>-007
    settings: tuple[GameSettings, ...]  # task i plays settings[i % len(settings)]
    first_seed: int


SPLIT_PLANS: dict[Split, SplitPlan] = {
    "train": SplitPlan("train", (COIN_COLLECTOR, COOKING, TREASURE_HUNTER), SPLIT_SEED_STRIDE),
    "eval_in_distribution": SplitPlan(
        "eval-id", (COIN_COLLECTOR, COOKING, TREASURE_HUNTER), 2 * SPLIT_SEED_STRIDE
    ),
    "eval_out_of_distribution": SplitPlan(
        "eval-ood", (COIN_COLLECTOR_LONG, COOKING_SMALL_BAG), 3 * SPLIT_SEED_STRIDE
    ),
}
ALL_SETTINGS: dict[str, GameSettings] = {
    f"{s.family}-{s.label}": s for plan in SPLIT_PLANS.values() for s in plan.settings
}
FAMILIES: tuple[str, ...] = ("coin_collector", "cooking", "treasure_hunter")


def settings_named(name: str) -> GameSettings | None:
    """The settings a task's ``params["settings"]`` names, or None."""
    return ALL_SETTINGS.get(name)


def settings_name(settings: GameSettings) -> str:
    return f"{settings.family}-{settings.label}"


def candidate_seeds(seed: int) -> tuple[int, ...]:
    """The task's own seed, then its replacements, in the order they are tried."""
    return tuple(seed + k * REPLACEMENT_STRIDE for k in range(MAX_REPLACEMENTS + 1))

"""Record episodes of the original BabaIsAI engine, seen through BALROG's text wrapper.

Sources (both MIT licence, not part of alma; run from a scratch copy, never vendored):
  - the engine: github.com/nacloos/baba-is-ai (package ``baba``), commit ad466e0
  - the wrapper: github.com/balrog-ai/BALROG, balrog/environments/babaisai/base.py, commit af7d1f1

The fixture ``episodes.json.gz`` beside this file was made by

    python3.11 -m venv /tmp/origvenv
    /tmp/origvenv/bin/pip install "numpy<2" "gym==0.23.0" matplotlib opencv-python-headless \
        pygame pillow
    # nacloos/baba-is-ai checked out in /tmp/orig, BALROG in /tmp/balrog
    .venv/bin/python tests/data/babaisai/record.py plans /tmp/babaisai-plans.json
    /tmp/origvenv/bin/python tests/data/babaisai/record.py record --baba /tmp/orig \
        --balrog /tmp/balrog --plans /tmp/babaisai-plans.json \
        --out tests/data/babaisai/episodes.json.gz

``plans`` (run with alma's environment) writes the 40 family names and, for some levels, the
winning plan that alma's solver finds for the ``balrog`` variant, so that scripted episodes
reach wins and rule changes, and hand-made cases; ``record`` (run with the original's
environment) plays every episode in the original and writes what it saw after each step: the
grid (every inside cell's stack, bottom to top), the rules BALROG lists, the status and the
text. An episode stops at a win, a loss, or BALROG's restart of the level (after which the
original draws a new level, which alma does not copy). Hand-made cases are recorded with seed
-1 and their pieces (x, y inside the wall, tile?, name, colour).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import random
import sys
from pathlib import Path
from typing import Any

LETTERS = {"I": "idle", "U": "up", "R": "right", "D": "down", "L": "left"}
SEEDS = (0, 1, 7, 10003, 20001)


def plans(out: Path) -> None:
    """The family names, winning plans of alma's ``balrog`` variant for some levels, and the
    hand-made cases (the win cases of ``tests/test_babaisai_win.py`` and :func:`_scenarios`)."""
    SCENARIOS.update(_scenarios())
    from alma.domains.babaisai.balrog_levels import generate_balrog
    from alma.domains.babaisai.families import FAMILIES
    from alma.domains.babaisai.solver import shortest_balrog_plan

    found = {}
    for family in FAMILIES:
        for seed in SEEDS[:1]:
            level = generate_balrog(family, seed)
            search = shortest_balrog_plan(level.board, level.state, 20, 40_000)
            if search.plan is not None:
                found[f"{family}/{seed}"] = "".join(m[0].upper() for m in search.plan)
    sys.path.insert(0, str(Path(__file__).parents[2]))
    from test_babaisai_win import CASES

    cases = {name: (pieces, actions) for name, (pieces, actions, _a, _o) in CASES.items()}
    cases.update(SCENARIOS)
    listed = {
        name: {
            "pieces": [[p.x, p.y, p.text, p.name, p.colour] for p in pieces],
            "actions": "".join(a[0].upper() for a in actions),
        }
        for name, (pieces, actions) in cases.items()
    }
    out.write_text(json.dumps({"families": FAMILIES, "plans": found, "cases": listed}, indent=1))
    print(f"{len(found)} plans, {len(listed)} hand-made cases", file=sys.stderr)


def _scenarios() -> dict[str, tuple[list[Any], str]]:
    """Hand-made levels (6 x 6) for what random play rarely meets."""
    from alma.domains.babaisai.engine import obj, rule_tiles, tile

    you = rule_tiles("baba", "you", 0, 5)
    return {
        "noun is noun stacks a new object and uncovers the old": (
            [*you, *rule_tiles("key", "door", 3, 4), obj("baba", 1, 1), obj("key", 2, 1)],
            "RRLUDDRUU",
        ),
        "breaking noun is noun uncovers the old object": (
            [*you, *rule_tiles("key", "door", 2, 2), obj("baba", 1, 1), obj("key", 4, 0)],
            "DRDRRUUU",
        ),
        "noun is the same noun stacks every step": (
            [*you, *rule_tiles("key", "key", 3, 4), obj("key", 2, 1), obj("baba", 1, 1)],
            "RRR",
        ),
        "a rule spelled twice is listed twice": (
            [
                *you,
                tile("baba", 1, 0),
                tile("is", 1, 1),
                tile("you", 1, 2),
                tile("baba", 0, 1),
                tile("you", 2, 1),
                obj("baba", 4, 2),
            ],
            "LLLU",
        ),
        "another object is you": (
            [
                *rule_tiles("key", "you", 0, 5),
                obj("key", 2, 2),
                obj("key", 4, 1),
                obj("baba", 3, 3),
            ],
            "RDLUU",
        ),
        "pull follows": (
            [*you, *rule_tiles("ball", "pull", 3, 4), obj("ball", 1, 2), obj("baba", 2, 2)],
            "RRDLLU",
        ),
        "open and shut": (
            [
                *you,
                *rule_tiles("baba", "open", 3, 4),
                *rule_tiles("door", "shut", 3, 3),
                obj("baba", 1, 1),
                obj("door", 2, 1),
                obj("door", 1, 2),
            ],
            "RDL",
        ),
        "defeat loses": (
            [*you, *rule_tiles("ball", "defeat", 3, 4), obj("baba", 1, 1), obj("ball", 2, 1)],
            "R",
        ),
        "a chain of tiles is pushed and blocked by the edge": (
            [*you, tile("key", 2, 1), tile("is", 3, 1), tile("win", 4, 1), obj("baba", 1, 1)],
            "RRR",
        ),
        "breaking baba is you restarts": (
            [*rule_tiles("baba", "you", 0, 4), obj("baba", 1, 5), obj("key", 4, 1)],
            "UR",
        ),
    }


SCENARIOS: dict[str, tuple[list[Any], str]] = {}


def _cell(piece) -> str:  # type: ignore[no-untyped-def]
    from baba.world_object import RuleBlock, name_mapping

    if isinstance(piece, RuleBlock):
        word = piece.name
        return {"lose": "defeat"}.get(word, word).upper()
    return f"{name_mapping[piece.type]}/{piece.color}"


def _grid(env) -> str:  # type: ignore[no-untyped-def]
    cells = []
    for j in range(1, env.height - 1):
        for i in range(1, env.width - 1):
            stack = env.grid.get(i, j, z="all")
            cells.append(",".join(_cell(p) for p in stack if p is not None))
    return "|".join(cells)


def record(baba: Path, balrog: Path, plans_file: Path, out: Path) -> None:
    sys.path.insert(0, str(baba))
    import baba as baba_pkg
    import numpy as np

    spec = importlib.util.spec_from_file_location(
        "balrog_babaisai_base", balrog / "balrog/environments/babaisai/base.py"
    )
    assert spec is not None and spec.loader is not None
    base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base)
    families = sorted(k.removeprefix("env/") for k in baba_pkg.registration.registry)
    listed = json.loads(plans_file.read_text())
    wanted: dict[str, str] = listed["plans"]
    chooser = random.Random(2024)
    episodes = []
    jobs: list[tuple[str, int, str]] = []
    for key, plan in sorted(wanted.items()):
        family, seed = key.rsplit("/", 1)
        jobs.append((family, int(seed), plan))
    for family in listed["families"]:
        assert family in families, family
        for _ in range(2):  # uniform random actions, and runs of one move (pushes go further)
            seed = chooser.choice(SEEDS)
            jobs.append((family, seed, "".join(chooser.choice("IURDL") for _ in range(20))))
            runs = ""
            while len(runs) < 30:
                runs += chooser.choice("URDL") * chooser.randint(1, 5)
            jobs.append((family, chooser.choice(SEEDS), runs[:30]))
    from baba.grid import BabaIsYouEnv, BabaIsYouGrid
    from baba.world_object import RuleIs, RuleObject, RuleProperty, make_obj

    class Handmade(BabaIsYouEnv):  # type: ignore[misc]
        """A 6 x 6 room (8 x 8 with its wall) holding the given pieces."""

        def __init__(self, pieces: list[list[Any]]) -> None:
            self.pieces = pieces
            super().__init__(width=8, height=8)

        def _gen_grid(self, width: int, height: int) -> None:
            self.grid = BabaIsYouGrid(width, height)
            self.grid.wall_rect(0, 0, width, height)
            for x, y, text, name, colour in self.pieces:
                if not text:
                    piece = make_obj(name, colour)
                elif name == "is":
                    piece = RuleIs()
                elif name in ("baba", "wall", "ball", "key", "door"):
                    piece = RuleObject(name)
                else:
                    piece = RuleProperty({"defeat": "lose"}.get(name, name))
                self.put_obj(piece, x + 1, y + 1)
            self.target_plan = ""

    for name, case in sorted(listed["cases"].items()):
        jobs.append((name, -1, case["actions"]))
    for family, seed, actions in jobs:
        if seed < 0:
            case = listed["cases"][family]
            env = base.BabaIsAIWrapper(Handmade(case["pieces"]))
        else:
            np.random.seed(seed)
            env = base.BabaIsAIWrapper(baba_pkg.make(f"env/{family}"))
        obs = env.reset()
        episode = {
            "family": family,
            "seed": seed,
            "actions": "",
            "start": _grid(env.env),
            "outline": env.env.target_plan,
            "text": obs["text"]["long_term_context"],
            "steps": [],
        }
        if seed < 0:
            episode["pieces"] = listed["cases"][family]["pieces"]
        for letter in actions:
            obs, reward, done, _info = env.step(LETTERS[letter])
            text = obs["text"]["long_term_context"]
            reset = text.startswith("[...] IS YOU rule was broken")
            status = "playing" if not done else "won" if reward > 0 else "lost"
            episode["actions"] += letter
            episode["steps"].append(
                {
                    "grid": "" if reset else _grid(env.env),
                    "rules": env.get_ruleset(),
                    "status": status,
                    "text": text,
                }
            )
            if done or reset:
                break
        episodes.append(episode)
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        json.dump({"episodes": episodes}, handle, sort_keys=True)
    print(f"{len(episodes)} episodes to {out}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plans")
    p.add_argument("out", type=Path)
    r = sub.add_parser("record")
    r.add_argument("--baba", type=Path, required=True)
    r.add_argument("--balrog", type=Path, required=True)
    r.add_argument("--plans", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "plans":
        plans(args.out)
    else:
        record(args.baba, args.balrog, args.plans, args.out)


if __name__ == "__main__":
    main()

"""The textworld domain: splits, generation and its cache, replacement seeds, real games.

Tests marked ``domain`` generate real games with TextWorld; they share one cache for the
session (``domain_cache``), so each game is made once. Treasure hunter games take from ten
seconds to minutes to generate, so the real games here are coin collector and cooking ones;
treasure hunter's generator is exercised through its search budget.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from alma.cli import main
from alma.domains.base import Domain, TextEnv
from alma.domains.checker import check_domain
from alma.domains.registry import find_task
from alma.errors import ConfigError, MissingDependencyError, UnknownDomainError, UsageError
from alma.llm.weights import models_dir, weights_status
from alma.types import SPLITS, Split, Task

pytest.importorskip("textworld")

from alma.domains.textworld import TextWorldDomain
from alma.domains.textworld import generation as gen
from alma.domains.textworld.env import clean_text, opening_scene, room_in
from alma.domains.textworld.families import (
    COIN_COLLECTOR,
    SPLIT_PLANS,
    STEP_LIMIT,
    TREASURE_HUNTER,
    candidate_seeds,
)

WEIGHTS_DIR = models_dir()  # before any test moves the cache

# TextWorld's note that the Z-machine back end cannot read the score of its games (TextWorld
# reads it itself); TextWorld silences it when imported, but pytest resets warning filters
pytestmark = pytest.mark.filterwarnings("ignore::jericho.UnsupportedGameWarning")


@pytest.fixture(scope="module")
def domain() -> TextWorldDomain:
    return TextWorldDomain()


def play(env: TextEnv, commands: list[str]) -> list[Any]:
    env.reset()
    return [env.step(command) for command in commands]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- no game needed


def test_implements_the_contract_and_says_what_it_is(domain: TextWorldDomain) -> None:
    assert isinstance(domain, Domain)
    assert domain.name == "textworld" and domain.step_limit == STEP_LIMIT == 80
    for word in ("coin", "treasure", "cookbook", "eval_out_of_distribution", "80 steps"):
        assert word in domain.description
    for command in ("go north", "unlock", "prepare meal", "slice", "80 steps"):
        assert command in domain.instructions
    assert "{" not in domain.description + domain.instructions
    details = domain.details
    assert json.loads(json.dumps(details)) == details
    assert any("treasure_hunter" in line for line in details["families"]["train"])
    assert not any(
        "treasure_hunter" in line for line in details["families"]["eval_out_of_distribution"]
    )


@pytest.mark.parametrize(
    ("split", "infix", "families"),
    [
        ("train", "train", {"coin_collector", "cooking", "treasure_hunter"}),
        ("eval_in_distribution", "eval-id", {"coin_collector", "cooking", "treasure_hunter"}),
        ("eval_out_of_distribution", "eval-ood", {"coin_collector", "cooking"}),
    ],
)
def test_each_split_has_50_tasks_of_its_families(
    domain: TextWorldDomain, split: Split, infix: str, families: set[str]
) -> None:
    tasks = domain.tasks(split)
    assert len(tasks) == 50 and len({t.id for t in tasks}) == 50
    assert all(re.fullmatch(rf"textworld-{infix}-\d{{3}}", t.id) for t in tasks)
    assert all(t.split == split for t in tasks)
    assert {t.params["family"] for t in tasks} == families
    for task in tasks:  # the goal as the agent is told it: never the id or the split
        assert task.id not in task.description and split not in task.description


def test_tasks_generate_nothing_and_cost_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALMA_CACHE_DIR", str(tmp_path / "cache"))
    started = time.perf_counter()
    counts = {split: len(TextWorldDomain().tasks(split)) for split in SPLITS}
    assert time.perf_counter() - started < 0.5
    assert counts == dict.fromkeys(SPLITS, 50)
    assert not (tmp_path / "cache").exists()


def test_splits_are_disjoint_in_ids_and_in_every_seed_a_task_may_play(
    domain: TextWorldDomain,
) -> None:
    seen: dict[tuple[str, int], str] = {}
    for split in SPLITS:
        for task in domain.tasks(split):
            for seed in candidate_seeds(task.seed):
                key = (task.params["settings"], seed)
                assert key not in seen, f"{task.id} and {seen[key]} could play the same game"
                seen[key] = task.id
    ids = [{t.id for t in domain.tasks(split)} for split in SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_out_of_distribution_settings_are_harder() -> None:
    def settings(split: Split, family: str) -> dict[str, Any]:
        plan = SPLIT_PLANS[split]
        return next(s.challenge_settings() for s in plan.settings if s.family == family)

    coin_in, coin_out = (
        settings("train", "coin_collector"),
        settings("eval_out_of_distribution", "coin_collector"),
    )
    assert (coin_in["level"], coin_out["level"]) == (220, 230)  # 20 -> 30 rooms to walk
    cook_in, cook_out = (
        settings("train", "cooking"),
        settings("eval_out_of_distribution", "cooking"),
    )
    assert cook_in["split"] == "train" and cook_out["split"] == "test"  # unseen foods
    assert not cook_in.get("drop") and cook_out["drop"]  # limited inventory
    assert {k: v for k, v in cook_in.items() if k != "split"} == {
        "recipe": 5, "take": 5, "go": 12, "open": True, "cook": True, "cut": True,
        "recipe_seed": 0,
    }  # fmt: skip


def test_bad_options_and_foreign_tasks_are_refused(domain: TextWorldDomain) -> None:
    with pytest.raises(ConfigError):
        TextWorldDomain(tasks_per_split=5000)
    with pytest.raises(ConfigError, match="unknown textworld families: chess"):
        TextWorldDomain(families=["chess"])
    with pytest.raises(UsageError):
        domain.tasks("test")  # type: ignore[arg-type]
    with pytest.raises(UnknownDomainError) as caught:
        find_task(domain, "textworld-train-050")
    assert caught.value.hint is not None
    assert "textworld-train-000 to -049" in caught.value.hint
    assert "textworld-eval-ood-000 to -049" in caught.value.hint
    assert find_task(domain, "textworld-eval-ood-049").split == "eval_out_of_distribution"
    with pytest.raises(UnknownDomainError, match="not a textworld task"):
        domain.make_env(Task("toy-train-000", "train", "Find it.", 0, {"profile": "standard"}))


def test_a_missing_textworld_package_is_one_error_with_the_install_command(
    domain: TextWorldDomain, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alma.domains.textworld as package

    monkeypatch.delattr(package, "generation", raising=False)
    monkeypatch.setitem(sys.modules, "alma.domains.textworld.generation", None)
    with pytest.raises(MissingDependencyError) as caught:
        domain.make_env(find_task(domain, "textworld-train-000"))
    assert caught.value.hint == "pip install 'textworld==1.7.0'"
    assert caught.value.exit_code == 2


def test_a_family_subset_keeps_the_task_ids() -> None:
    every = {t.id: t for t in TextWorldDomain().tasks("train")}
    cooking = TextWorldDomain(families=["cooking"]).tasks("train")
    assert cooking and all(every[t.id] == t for t in cooking)
    assert {t.params["family"] for t in cooking} == {"cooking"}


def test_unknown_task_id_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "play", "--domain", "textworld", "--task", "textworld-train-999")
    assert code == 2 and "has no task 'textworld-train-999'" in err
    assert "Traceback" not in err


def test_game_text_is_cleaned() -> None:
    raw = (
        "\nYou pick up the coin.\n\n\n\n      *** The End ***   \n\n"
        "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?\n>"
        "                    -= Lounge =-0/20"
    )
    assert clean_text(raw) == "You pick up the coin.\n\n*** The End ***"
    assert clean_text("\nThat's not a verb I recognise.\n\n>      -= Hall =-0/3") == (
        "That's not a verb I recognise."
    )
    moved = "\n\n-= Garden =-\nYou are in a garden.\n\n>    -= Garden =-0/2"
    assert room_in(clean_text(moved)) == "Garden" and room_in("You jump.") is None
    opening = "  ___ banner ___\n\nFind the coin!\n\n-= Hall =-\nA hall.\n\n>   -= Hall =-0/1"
    assert opening_scene(opening, "Find the coin!") == "-= Hall =-\nA hall."


def test_quest_search_budget_gives_up_on_a_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "QUEST_SEARCH_BUDGET", 25)
    with pytest.raises(gen.GenerationFailed, match="examined more than 25 actions"):
        gen.make_game(TREASURE_HUNTER, 123)


# --------------------------------------------------------------------------- real games


@pytest.mark.domain
def test_a_game_with_too_short_a_solution_is_refused() -> None:
    strict = dataclasses.replace(COIN_COLLECTOR, min_solution=21)  # its walkthroughs take 20
    with pytest.raises(gen.GenerationFailed, match=r"takes only 20 steps \(< 21\)"):
        gen.make_game(strict, 7)


@pytest.mark.domain
def test_check_domain_passes(domain_cache: Path) -> None:
    small = TextWorldDomain(tasks_per_split=1, families=["coin_collector"])
    assert check_domain(small, tasks_per_split=1) == []
    assert list(domain_cache.glob("textworld/coin_collector-level2[23]0-*/*.z8"))


@pytest.mark.domain
@pytest.mark.parametrize(
    ("task_id", "game_seed"),
    [
        ("textworld-train-000", 100_000),  # coin collector
        ("textworld-train-001", 100_001),  # cooking
        # cooking, limited inventory: seeds 300001 and 301001 have walkthroughs over 80 steps
        ("textworld-eval-ood-001", 302_001),
    ],
)
def test_the_walkthrough_wins_through_the_env(
    domain_cache: Path, domain: TextWorldDomain, task_id: str, game_seed: int
) -> None:
    task = find_task(domain, task_id)
    commands = domain.solve(task)
    assert 0 < len(commands) <= STEP_LIMIT
    env = domain.make_env(task)
    try:
        first = env.reset()
        assert first.info["game_seed"] == game_seed
        assert first.actions and "look" in first.actions
        assert "Location: " in first.text and "Inventory: " in first.text
        assert "$$" not in first.text and "-= " in first.text  # no banner; the first room
        transitions = play(env, commands)
        last = transitions[-1]
        assert last.done and last.success and last.info["won"]
        assert not any(t.done for t in transitions[:-1])
        score = sum(t.reward for t in transitions)
        assert score == last.info["score"] == last.info["max_score"] > 0
        assert env.step("look") == last  # the game is over: nothing changes
    finally:
        env.close()


@pytest.mark.domain
def test_restart_quit_and_undo_never_reach_the_game(
    domain_cache: Path, domain: TextWorldDomain
) -> None:
    task = find_task(domain, "textworld-train-000")  # coin collector
    walkthrough = domain.solve(task)
    env = domain.make_env(task)
    try:
        env.reset()
        moved = env.step(walkthrough[0])
        for command in ("restart", "RESTART", "quit", "undo", "save", "restore"):
            refused = env.step(command)
            assert "not available" in refused.observation.text and not refused.done
            assert refused.observation.info["room"] == moved.observation.info["room"]
            assert refused.observation.actions == moved.observation.actions
        finished = [env.step(command) for command in walkthrough[1:]]
        assert finished[-1].success  # the game went on from where it was
    finally:
        env.close()


@pytest.mark.domain
def test_losing_ends_the_episode_without_success(
    domain_cache: Path, domain: TextWorldDomain
) -> None:
    task = find_task(domain, "textworld-train-001")  # cooking
    food = next(c.split(" ", 1)[1] for c in domain.solve(task) if c.startswith("take "))
    food = food.split(" from ")[0]
    walkthrough = domain.solve(task)
    upto = next(i for i, c in enumerate(walkthrough) if c.startswith(f"take {food}"))
    env = domain.make_env(task)
    try:
        transitions = play(env, [*walkthrough[: upto + 1], f"eat {food}"])
        last = transitions[-1]
        assert last.done and not last.success and last.info["lost"]
    finally:
        env.close()


@pytest.mark.domain
def test_envs_in_threads_and_one_generation_per_game(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    domain_cache: Path,
) -> None:
    domain = TextWorldDomain()
    task = find_task(domain, "textworld-eval-id-000")  # coin collector
    reference = domain.make_env(task).reset().text  # from the session cache
    walkthrough = domain.solve(task)
    monkeypatch.setenv("ALMA_CACHE_DIR", str(tmp_path / "fresh"))
    results: dict[int, tuple[str, bool]] = {}

    def worker(number: int) -> None:
        env = domain.make_env(task)  # the first thread generates it, the others wait
        try:
            first = env.reset().text
            results[number] = (first, play(env, walkthrough)[-1].success)
        finally:
            env.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    with caplog.at_level("INFO", logger="alma.domains.textworld"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    generated = [r for r in caplog.records if r.getMessage().startswith("generated TextWorld")]
    assert len(generated) == 1  # made once, in a child process
    assert results == dict.fromkeys(range(3), (reference, True))


@pytest.mark.domain
def test_prepare_generates_in_worker_processes_the_same_games(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, domain_cache: Path
) -> None:
    domain = TextWorldDomain()
    tasks = [find_task(domain, f"textworld-{infix}-000") for infix in ("train", "eval-ood")]
    expected = [domain.make_env(task).reset().text for task in tasks]  # session cache
    monkeypatch.setenv("ALMA_CACHE_DIR", str(tmp_path / "fresh"))
    done = domain.prepare(tasks, workers=2, progress=False)
    assert (done.tasks, done.cached, done.generated, done.replaced) == (2, 0, 2, {})
    assert set(done.game_seconds) == {task.id for task in tasks}
    # made by other processes (other hash seeds), the games read the same
    assert [domain.make_env(task).reset().text for task in tasks] == expected
    again = domain.prepare(tasks, workers=2, progress=False)
    assert (again.cached, again.generated) == (2, 0) and again.seconds < 1


@pytest.mark.domain
def test_a_seed_that_fails_is_replaced_and_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import textworld.challenges

    monkeypatch.setenv("ALMA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(gen, "ISOLATED", False)  # generate here, where the generator is patched
    domain = TextWorldDomain()
    task = find_task(domain, "textworld-train-003")  # coin collector
    desc, make, arguments = textworld.challenges.CHALLENGES["tw-coin_collector"]
    calls: list[int] = []

    def flaky(settings: Any, options: Any) -> Any:
        calls.append(len(calls))
        if len(calls) == 1:  # the task's own seed
            raise RuntimeError("the generator broke on this seed")
        return make(settings, options)

    monkeypatch.setitem(
        textworld.challenges.CHALLENGES, "tw-coin_collector", (desc, flaky, arguments)
    )
    with caplog.at_level("WARNING", logger="alma.domains.textworld"):
        env = domain.make_env(task)
    replacement = task.seed + 1_000
    assert env.reset().info["game_seed"] == replacement
    env.close()
    assert "seed 100003 makes no usable game (RuntimeError: the generator broke" in caplog.text
    folder = domain.game(task).path.parent
    assert folder.parent == tmp_path / "cache" / "textworld"
    marker = json.loads((folder / "100003.failed.json").read_text())
    assert marker["seed"] == 100_003 and "RuntimeError" in marker["reason"]
    # a later run finds the replacement from the cache, without trying the failed seed again
    assert len(calls) == 2
    other = TextWorldDomain()
    assert other.make_env(task).reset().info["game_seed"] == replacement
    assert len(calls) == 2
    done = other.prepare([task], progress=False)
    assert done.replaced == {task.id: replacement} and done.generated == 0


@pytest.mark.domain
def test_a_scripted_random_episode_through_the_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, domain_cache: Path
) -> None:
    code, out, _ = cli(
        capsys,
        "play", "--domain", "textworld", "--task", "textworld-train-000",
        "--agent-model", "scripted:random", "--max-steps", "12",
        "--json", "--run-dir", str(tmp_path / "run"),
    )  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["task"] == "textworld-train-000"
    episode = result["episode"]
    assert 1 <= result["steps_used"] == len(episode["steps"]) <= 12
    assert result["reason"] in ("success", "done", "step_limit")
    assert "coin" in episode["start"]["observation"]
    assert all(step["valid"] for step in episode["steps"])  # picked from the admissible list


@pytest.mark.domain
@pytest.mark.local_llm
def test_a_few_steps_with_the_local_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, domain_cache: Path
) -> None:
    if not weights_status("local-small", cache_dir=WEIGHTS_DIR)["installed"]:
        pytest.skip("the local-small weights are not installed (alma models install local-small)")
    code, out, _ = cli(
        capsys,
        "play", "--domain", "textworld", "--task", "textworld-train-000",
        "--agent-model", "local-small", "--max-steps", "2",
        "--json", "--run-dir", str(tmp_path / "run"),
    )  # fmt: skip
    result = json.loads(out)
    assert code == 0 and 1 <= result["steps_used"] <= 2 and result["tokens"] > 0
    assert result["ledger"]["by_purpose"]["agent"]["calls"] >= result["steps_used"]

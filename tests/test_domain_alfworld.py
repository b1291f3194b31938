"""The ``alfworld`` domain: generated tasks, the official-data path, ALFWorld's engine."""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alfworld")
pytest.importorskip("textworld.envs.pddl")

from alma.cli import main
from alma.domains.alfworld import AlfWorldDomain
from alma.domains.alfworld.dependencies import DEFAULT_DATA_DIR, load_engine
from alma.domains.alfworld.generated import GeneratedTasks, GenerationError
from alma.domains.alfworld.generator import TASK_TYPES, TaskSpec, draw_problem
from alma.domains.alfworld.scenes import rules
from alma.domains.alfworld.solver import Verdict, fast_downward_plan, replay
from alma.domains.checker import check_domain
from alma.domains.registry import domain_specs, get_domain, open_env
from alma.errors import ConfigError, MissingDependencyError
from alma.types import SPLITS, Task

N = 12  # tasks per split in these tests: two of each task type


def domain(**options: Any) -> AlfWorldDomain:
    return AlfWorldDomain(tasks_per_split=N, source="generated", **options)


def one_of_each_type(d: AlfWorldDomain) -> list[Task]:
    return list(d.tasks("train")[: len(TASK_TYPES)])


def play(env: Any, commands: list[str]) -> list[bool]:
    """Play ``commands`` from the start; the success flag after each one."""
    observation = env.reset()
    flags = []
    for command in commands:
        assert command in observation.actions, command
        transition = env.step(command)
        observation = transition.observation
        flags.append(transition.success)
    return flags


# --------------------------------------------------------------------------- listing (cheap)


def test_listing_is_deterministic_cheap_and_covers_every_task_type(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, second = domain(), domain()
    for split in SPLITS:
        tasks = first.tasks(split)
        assert tasks == second.tasks(split)
        assert len(tasks) == N and all(t.split == split for t in tasks)
        assert Counter(t.params["task_type"] for t in tasks) == dict.fromkeys(TASK_TYPES, 2)
        assert all(
            t.params["source"] == "generated" and t.id.startswith("alfworld-gen-") for t in tasks
        )
    assert not cache.exists()  # listing generated nothing
    default = AlfWorldDomain(source="generated")
    assert all(len(default.tasks(split)) >= 60 for split in SPLITS)
    assert default.tasks("train")[:N] == first.tasks("train")  # ids are stable


def test_splits_are_disjoint_and_out_of_distribution_rooms_are_held_out() -> None:
    d = AlfWorldDomain(source="generated")
    by_split = {split: d.tasks(split) for split in SPLITS}
    ids = [t.id for tasks in by_split.values() for t in tasks]
    seeds = [t.seed for tasks in by_split.values() for t in tasks]
    assert len(set(ids)) == len(ids) and len(set(seeds)) == len(seeds)
    held_out = rules().held_out

    def plans(split: str) -> set[int]:
        return {int(t.params["floor_plan"]) for t in by_split[split]}  # type: ignore[index]

    assert not (plans("train") | plans("eval_in_distribution")) & held_out
    assert plans("eval_out_of_distribution") <= held_out
    assert len(plans("train") & plans("eval_in_distribution")) > 5  # the same rooms
    for tasks in by_split.values():
        assert set(Counter(t.params["task_type"] for t in tasks)) == set(TASK_TYPES)


def test_generator_is_deterministic() -> None:
    spec = TaskSpec.from_params(domain().tasks("eval_out_of_distribution")[3].params)
    assert draw_problem(spec, 0) == draw_problem(spec, 0)
    assert draw_problem(spec, 0).pddl != draw_problem(spec, 1).pddl
    assert "(:goal" in draw_problem(spec).pddl and spec.goal in draw_problem(spec).game()["grammar"]


def test_a_wrong_alfworld_data_folder_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="no such folder") as error:
        AlfWorldDomain()
    assert error.value.hint and "alfworld-download" in error.value.hint

    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path))
    with pytest.raises(ConfigError, match=r"no json_2\.1\.1 folder"):
        AlfWorldDomain()

    (tmp_path / "json_2.1.1" / "train" / "pick_and_place_simple-Mug-None-Desk-308" / "t1").mkdir(
        parents=True
    )
    (tmp_path / "json_2.1.1" / "valid_seen").mkdir()
    with pytest.raises(ConfigError) as error:
        AlfWorldDomain()
    message = str(error.value)
    assert "\n" not in message
    assert "train/ has no game.tw-pddl files" in message
    assert "valid_seen/ has no game.tw-pddl files" in message
    assert "valid_unseen/ is missing" in message

    code = main(["play", "--domain", "alfworld", "--agent-model", "scripted"])
    err = capsys.readouterr().err
    assert code == 2 and "valid_unseen/ is missing" in err and "Traceback" not in err


def test_the_default_folder_alfworld_fills_in_is_not_a_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if (DEFAULT_DATA_DIR / "json_2.1.1").exists():
        pytest.skip("the official data is in ALFWorld's default folder on this machine")
    monkeypatch.setenv("ALFWORLD_DATA", str(DEFAULT_DATA_DIR))  # what `import alfworld` sets
    assert AlfWorldDomain().source == "generated"


def test_a_missing_engine_asks_for_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "alma.domains.alfworld.engine", None)
    with pytest.raises(MissingDependencyError) as error:
        load_engine()
    assert error.value.hint == domain_specs()["alfworld"].install
    assert "alfworld==" in error.value.hint


# --------------------------------------------------------------------------- real games


@pytest.mark.domain
def test_every_task_type_is_won_by_its_plan_through_the_harness(domain_cache: Path) -> None:
    d = domain()
    for task in one_of_each_type(d):
        plan = d.solve(task)
        env = open_env(d, task)  # wrapped in the step limit, as the harness does
        try:
            first = env.reset()
            assert first.text.endswith(f"Your task is to: {task.description}.")
            assert first.actions and "look" in first.actions
            flags = play(env, plan)
        finally:
            env.close()
        assert flags[-1] and not any(flags[:-1]), (task.id, plan)
        assert 0 < len(plan) <= d.step_limit
    cached = sorted(p.name for p in domain_cache.glob("alfworld/generated-*/alfworld-gen-*.json"))
    assert {f"{t.id}.json" for t in one_of_each_type(d)} <= set(cached)


@pytest.mark.domain
def test_a_cached_game_is_reused_and_matches_a_fresh_generation(
    domain_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = domain().tasks("eval_out_of_distribution")[0]
    shared = domain().game(task)

    def no_generation(*args: object) -> Verdict:
        raise AssertionError("the cached game was generated again")

    monkeypatch.setattr(GeneratedTasks, "check", no_generation)
    assert domain().game(task) == shared
    monkeypatch.undo()

    fresh = GeneratedTasks(N, 30, root=tmp_path / "fresh")
    assert fresh.game(task).data == shared  # same seed, same game, in another cache
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == [f"{task.id}.json"]  # no temp file
    entry = json.loads((tmp_path / "fresh" / f"{task.id}.json").read_text())
    assert entry["game"]["solvable"] is True and entry["attempt"] == 0 and entry["replaced"] == []
    assert entry["traj_data"]["task_type"] == task.params["task_type"]


@pytest.mark.domain
def test_a_task_that_fails_its_check_is_replaced_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALMA_CACHE_DIR", str(tmp_path))
    real_check = GeneratedTasks.check

    def first_attempt_fails(self: GeneratedTasks, problem: Any) -> Verdict:
        if problem.attempt == 0:
            return Verdict(None, "rejected by the test")
        return real_check(self, problem)

    monkeypatch.setattr(GeneratedTasks, "check", first_attempt_fails)
    d = domain()
    task = d.tasks("train")[1]
    game = d.generated_game(task)
    assert game.attempt == 1
    assert game.replaced == ({"attempt": 0, "reason": "rejected by the test"},)
    spec = TaskSpec.from_params(task.params)
    assert game.data["pddl_problem"] == draw_problem(spec, 1).pddl  # the replacement is fixed
    assert play(d.make_env(task), d.solve(task))[-1]

    again = domain()  # read back from the cache, with the record
    assert again.generated_game(task).replaced == game.replaced

    monkeypatch.setattr(GeneratedTasks, "check", lambda self, problem: Verdict(None, "never"))
    with pytest.raises(GenerationError, match="no solvable game"):
        domain().game(d.tasks("train")[2])


@pytest.mark.domain
def test_prepare_reports_generated_cached_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALMA_CACHE_DIR", str(tmp_path))
    d = AlfWorldDomain(tasks_per_split=1, source="generated")
    report = d.prepare(["eval_in_distribution"], progress=False)
    assert (report.generated, report.cached, report.replaced) == (1, 0, {})
    report = d.prepare(["eval_in_distribution"], progress=False)
    assert (report.generated, report.cached) == (0, 1)


@pytest.mark.domain
def test_fast_downward_finds_a_plan_that_wins(domain_cache: Path) -> None:
    d = domain()
    # a bathroom, bedroom or living room: small enough for the optimal planner to be quick
    task = next(t for t in one_of_each_type(d) if t.params["room"] != "kitchen")
    game = d.game(task)
    plan = fast_downward_plan(game)
    assert plan and len(plan) <= len(d.solve(task))  # optimal, so never longer than the expert
    env = load_engine().AlfWorldEnv(game)
    try:
        assert replay(env, plan, limit=d.step_limit).solvable
    finally:
        env.close()


@pytest.mark.domain
def test_the_engine_shows_what_textworlds_own_env_shows(domain_cache: Path) -> None:
    import random

    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    from textworld.envs.pddl import PddlEnv

    d = domain()
    task = one_of_each_type(d)[3]  # heat then place: a kitchen
    game = d.game(task)
    reference = AlfredDemangler(
        PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True)), shuffle=False
    )
    reference.load(game)
    ours = d.make_env(task)
    try:
        state, observation = reference.reset(), ours.reset()
        assert observation.text == state.feedback.strip()
        assert observation.actions == tuple(state["admissible_commands"])
        rng = random.Random(7)
        commands = [*d.solve(task)[:2], "jump around"]
        for step in range(25):
            command = commands[step] if step < len(commands) else rng.choice(observation.actions)
            state, _, _ = reference.step(command)
            transition = ours.step(command)
            observation = transition.observation
            assert observation.text == state.feedback.strip(), command
            assert observation.actions == tuple(state["admissible_commands"]), command
            assert transition.success == state["won"]
    finally:
        ours.close()


@pytest.mark.domain
def test_games_played_in_threads_at_once(domain_cache: Path) -> None:
    d = domain()
    tasks = one_of_each_type(d)[:4]
    plans = {t.id: d.solve(t) for t in tasks}
    stdout, argv = sys.stdout, list(sys.argv)
    results: dict[str, list[bool]] = {}
    errors: list[BaseException] = []

    def worker(task: Task) -> None:
        try:
            for _ in range(2):  # two games of the same task at once, too
                env = d.make_env(task)
                try:
                    results[task.id] = play(env, plans[task.id])
                finally:
                    env.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in tasks + tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(flags[-1] for flags in results.values()) and len(results) == len(tasks)
    assert sys.stdout is stdout and sys.argv == argv  # the translator's globals are restored


@pytest.mark.domain
def test_check_domain_passes(domain_cache: Path) -> None:
    assert check_domain(domain(), tasks_per_split=1) == []


@pytest.mark.domain
def test_official_data_path_on_games_in_the_official_layout(
    domain_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = domain()
    sources = one_of_each_type(generated)
    root = tmp_path / "alfworld-data" / "json_2.1.1"
    layout = {"train": sources[:3], "valid_seen": sources[3:5], "valid_unseen": sources[5:]}
    by_folder: dict[str, Task] = {}
    for folder, tasks in layout.items():
        for n, task in enumerate(tasks):
            p = task.params
            target = p["parent_type"] or p["toggle_type"]
            name = f"{p['task_type']}-{p['object_type']}-None-{target}-{p['floor_plan']}"
            by_folder[name] = task
            trial = root / folder / name / f"trial_T2019090{n}_000000_000000"
            trial.mkdir(parents=True)
            entry = json.loads(GeneratedTasks(N, 30).path(task).read_text())
            (trial / "game.tw-pddl").write_text(json.dumps(entry["game"]))
            (trial / "traj_data.json").write_text(json.dumps(entry["traj_data"]))
    skipped = root / "train" / "pick_and_place_with_movable_recep-Apple-Bowl-Fridge-1" / "trial_x"
    skipped.mkdir(parents=True)
    (skipped / "game.tw-pddl").write_text("{}")
    (root / "train" / "pick_and_place_simple-Apple-None-Fridge-1" / "trial_no_game").mkdir(
        parents=True
    )

    monkeypatch.setenv("ALFWORLD_DATA", str(root.parent))
    official = get_domain("alfworld")
    assert isinstance(official, AlfWorldDomain) and official.source == "official"
    assert [len(official.tasks(split)) for split in SPLITS] == [3, 2, 1]
    assert official.details["source"] == "official"
    assert "official ALFWorld game files" in official.description
    for split, folder in zip(SPLITS, layout, strict=True):
        for ours in official.tasks(split):
            source = by_folder[Path(ours.params["path"]).parent.name]
            assert source in layout[folder]
            assert ours.params["source"] == "official" and ours.id.startswith("alfworld-")
            expected = replace(TaskSpec.from_params(source.params), template=0).goal
            assert ours.description == expected  # the goal library's first sentence
            env = official.make_env(ours)
            try:
                assert play(env, official.solve(ours))[-1]
            finally:
                env.close()
    assert check_domain(official, tasks_per_split=1) == []
    assert AlfWorldDomain(data_dir=root).source == "official"  # the json_2.1.1 folder itself


@pytest.mark.domain
def test_cli_lists_plays_and_labels_generated_tasks(
    domain_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["domains", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == "alfworld")
    assert row["source"] == "generated" and row["installed"]
    assert all(row["tasks"][split] >= 60 for split in SPLITS)

    code = main(
        ["play", "--domain", "alfworld", "--agent-model", "scripted", "--json", "--max-steps", "6"]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["task"].startswith("alfworld-gen-train-")
    steps = result["episode"]["steps"]
    assert 0 < len(steps) <= 6 and all(step["valid"] for step in steps)
    assert "Your task is to:" in steps[0]["observation"]


@pytest.mark.domain
def test_eval_reports_say_the_tasks_are_generated(
    capsys: pytest.CaptureFixture[str], domain_cache: Path
) -> None:
    from alma.cli import main

    args = ["eval", "--domain", "alfworld", "--memory", "no_memory", "--quick", "--max-steps", "3"]
    assert main(args) == 0
    assert "on alfworld[generated]/eval_in_distribution" in capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks_source"] == "generated"

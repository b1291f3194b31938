import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alma.cli import main, views
from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.evaluate.jobs import EpisodeJob, EpisodeResult, LocalExecutor
from alma.evaluate.protocol import Evaluator
from alma.evaluate.statistics import bootstrap_ci, mean_and_stderr, paired_bootstrap
from alma.evaluate.tasks import select_tasks
from alma.memory.loading import reference_design
from alma.run import Run

DESIGNS = Path(__file__).parent / "designs"
FIVE = ["no_memory", "trajectory_retrieval", "reasoning_bank", "dynamic_cheatsheet", "g_memory"]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("rollout", ["batched", "sequential"])
@pytest.mark.parametrize("memory", FIVE)
def test_eval_json_for_every_design_and_rollout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, memory: str, rollout: str
) -> None:
    code, out, _ = run_cli(
        capsys,
        "eval",
        "--domain",
        "toy",
        "--memory",
        memory,
        "--agent-model",
        "scripted",
        "--rollout",
        rollout,
        "--quick",
        "--json",
        "--run-dir",
        str(tmp_path / "run"),
    )
    result = json.loads(out)
    assert code == 0, out
    assert result["n_episodes"] == 2 + 3 * 3
    assert len(result["repeats"]) == 3 and 0 <= result["score"] <= 1
    assert result["stderr"] >= 0 and set(result["per_task"]) == set(result["deploy_tasks"])
    assert result["usage"]["agent"]["calls"] > 0
    assert result["failed_memory_calls"] == 0
    expected_updates = 2 + (9 if rollout == "sequential" else 0)
    assert result["memory"]["update_calls"] == expected_updates
    assert result["memory"]["retrieve_calls"] == 9
    db = sqlite3.connect(tmp_path / "run" / "alma.sqlite")
    assert db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 11
    status = db.execute("SELECT status FROM evaluations").fetchone()[0]
    assert status == "done"


def test_compare_prints_the_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(
        capsys,
        "compare",
        "--domain",
        "toy",
        "--memories",
        ",".join(FIVE),
        "--agent-model",
        "scripted",
        "--quick",
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert code == 0
    for name in FIVE:
        assert name in out
    assert "gain: over no_memory, paired by task" in out  # the caption says what gain is


def test_compare_json_adds_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys,
        "compare",
        "--domain",
        "toy",
        "--memories",
        "trajectory_retrieval",
        "--quick",
        "--json",
    )
    rows = json.loads(out)["rows"]
    assert code == 0 and [row["design"] for row in rows] == ["no_memory", "trajectory_retrieval"]
    assert rows[0]["p_value"] is None and 0 <= rows[1]["p_value"] <= 1


def test_a_broken_design_is_given_up_not_scored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with (tmp_path / "alma.toml").open("a") as settings:
        settings.write("[eval]\nretrieve_timeout_s = 0.2\n")
    code, out, err = run_cli(
        capsys,
        "eval",
        "--domain",
        "toy",
        "--design",
        str(DESIGNS / "faulty.py"),
        "--rollout",
        "sequential",
        "--quick",
        "--json",
    )
    result = json.loads(out)
    assert code == 1 and result["status"] == "design_failed" and result["score"] is None
    memory = result["memory"]
    # both build updates raise, then the first deploy retrieve: three failures in a row give the
    # design up; the calls after them are skipped (concurrent walks may have started one more)
    attempted = memory["update_calls"] + memory["retrieve_calls"]
    assert memory["update_calls"] == 2 and 3 <= attempted <= 5
    assert result["skipped_calls"] == 2 + 3 * 3 * 2 - attempted
    assert "retrieve exploded" in result["error"] and result["error_line"] == 19
    assert "line 19" in err and "retrieve exploded" in err


def test_isolated_failures_are_counted_and_the_score_stands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(
        capsys,
        "eval",
        "--domain",
        "toy",
        "--design",
        str(DESIGNS / "flaky.py"),
        "--quick",
        "--json",
    )
    result = json.loads(out)
    assert code == 0 and result["status"] == "done" and result["score"] is not None
    assert result["memory"]["retrieve_calls"] == 9 and result["memory"]["retrieve_errors"] == 3
    assert result["failed_memory_calls"] == 3 and result["skipped_calls"] == 0


def test_a_design_that_never_returns_costs_about_one_call_limit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    limit = 1.0
    with (tmp_path / "alma.toml").open("a") as settings:
        settings.write(f"[eval]\nretrieve_timeout_s = {limit}\n")
    started = time.perf_counter()
    code, out, _ = run_cli(
        capsys,
        "eval",
        "--domain",
        "toy",
        "--design",
        str(DESIGNS / "stuck.py"),
        "--quick",
        "--json",
    )
    result = json.loads(out)
    assert code == 1 and result["status"] == "design_failed"
    assert "timed out" in result["error"] and result["skipped_calls"] > 0
    # the deploy retrieves run concurrently: they time out together, and no call follows
    assert result["memory"]["retrieve_calls"] <= 9
    assert time.perf_counter() - started < 2 * limit + 8  # build + worker start-up + 2 limits


def test_faulty_retrieve_kinds_are_named(tmp_path: Path) -> None:
    import asyncio

    from alma.llm.embeddings import HashEmbedder
    from alma.llm.scripted import ScriptedLLM
    from alma.memory.loading import read_design
    from alma.memory.runner import InProcessFactory
    from alma.memory.toolkit import ModelServices
    from alma.types import EpisodeStart

    async def calls() -> list[str | None]:
        factory = InProcessFactory(retrieve_timeout_s=0.1, update_timeout_s=0.1)
        runner = await factory.start(
            read_design(DESIGNS / "faulty.py"), ModelServices(ScriptedLLM(), HashEmbedder()), 0
        )
        start = EpisodeStart("toy", "find the coin", "You are in the hall.")
        return [(await runner.retrieve(start)).error for _ in range(4)]

    errors = asyncio.run(calls())
    assert errors[0] is not None and "retrieve exploded" in errors[0]
    assert errors[1] is not None and "not JSON-serialisable" in errors[1]
    assert errors[2] is not None and "longer than 0.1 s" in errors[2]
    assert errors[3] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory", "nope"], "unknown memory design 'nope'"),
        (["--design", str(DESIGNS / "not_a_design.py")], "defines no MemoryDesign subclass"),
        (["--design", "missing.py"], "does not exist"),
        (["--memory", "no_memory", "--tasks", "500"], "has 50 tasks; 500 asked"),
        (["--memory", "no_memory", "--rollout", "sideways"], "rollout"),
        ([], "exactly one of --memory"),
    ],
)
def test_bad_eval_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "eval", "--domain", "toy", *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_ctrl_c_keeps_finished_episodes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alma",
            "eval",
            "--domain",
            "toy",
            "--design",
            str(DESIGNS / "slow.py"),
            "--tasks",
            "12",
            "--run-dir",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    database = run_dir / "alma.sqlite"
    deadline = time.time() + 60
    episodes = 0
    while time.time() < deadline and episodes < 6:
        time.sleep(0.2)
        if database.exists():
            with sqlite3.connect(database) as db:
                try:
                    episodes = db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
                except sqlite3.OperationalError:
                    episodes = 0
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()
    assert b"interrupted" in err and b"Traceback" not in err
    with sqlite3.connect(database) as db:
        saved = db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
        status = db.execute("SELECT status FROM evaluations").fetchone()[0]
    assert saved >= 6 and status == "interrupted"


async def test_same_tasks_for_every_design_and_reuse(tmp_path: Path) -> None:
    config = load_config(overrides={"models": {"agent": "scripted"}})
    domain = ToyDomain()
    build, deploy = select_tasks(domain, "train", config.eval, quick=True, seed=0)
    assert (len(build), len(deploy)) == (2, 3)
    again = select_tasks(domain, "train", config.eval, quick=True, seed=0)
    assert (build, deploy) == again
    other = select_tasks(domain, "train", config.eval, quick=True, seed=1)
    assert other != (build, deploy)
    async with Run(config, tmp_path / "run") as run:
        evaluator = Evaluator(run, domain)
        first = await evaluator.evaluate(reference_design("no_memory"), "train", quick=True)
        second = await evaluator.evaluate(reference_design("no_memory"), "train", quick=True)
    assert not first.reused and second.reused and second.score == first.score
    assert first.deploy_tasks == [task.id for task in deploy]


def test_statistics() -> None:
    assert mean_and_stderr([1.0, 0.0, 0.5]) == pytest.approx(
        (
            0.5,
            0.288675,
        ),
        rel=1e-4,
    )
    assert mean_and_stderr([0.4]) == (0.4, 0.0)
    low, high = bootstrap_ci([0.0, 1.0] * 20)
    assert low < 0.5 < high
    better = {f"t{i}": 1.0 for i in range(30)}
    worse = {f"t{i}": 0.0 if i % 3 else 1.0 for i in range(30)}
    comparison = paired_bootstrap(better, worse)
    assert comparison.gain == pytest.approx(20 / 30) and comparison.p_value < 0.01
    assert comparison.ci_low > 0 and comparison.tasks == 30
    same = paired_bootstrap(better, better)
    assert same.gain == 0 and same.p_value == 1.0


async def test_a_design_cannot_swallow_the_end_of_the_budget() -> None:
    """reasoning_bank catches every exception of its model calls; the runner still stops."""
    from alma.errors import BudgetExceededError
    from alma.llm.embeddings import HashEmbedder
    from alma.llm.ledger import Budget, Ledger, Metered, MeteredEmbedder
    from alma.llm.scripted import ScriptedLLM
    from alma.memory.runner import InProcessFactory
    from alma.memory.toolkit import ModelServices
    from alma.types import Episode, EpisodeStart, Outcome, Step

    ledger = Ledger(budget=Budget(tokens=0))  # already spent
    services = ModelServices(
        Metered(ScriptedLLM(), ledger, "memory"), MeteredEmbedder(HashEmbedder(), ledger, "memory")
    )
    runner = await InProcessFactory().start(reference_design("reasoning_bank"), services, 0)
    start = EpisodeStart("toy", "find the coin", "You are in the hall.")
    episode = Episode(
        start, (Step("You are in the hall.", "", "go north"),), Outcome(False, 0.0, 1)
    )
    with pytest.raises(BudgetExceededError):
        await runner.update(episode)


def test_eval_logs_progress_lines_when_not_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In a log file there is no bar: a line at each tenth of the episodes, at most one every
    views.LOG_EVERY_S seconds, so a quick evaluation prints none and a long one about ten."""
    args = ["eval", "--domain", "toy", "--memory", "no_memory", "--agent-model", "scripted"]
    code, _, err = run_cli(capsys, *args, "--quick", "--run-dir", str(tmp_path / "a"))
    assert code == 0 and "episodes" not in err
    clock = iter(range(0, 10**6, 60))  # a minute passes between two readings of the clock
    monkeypatch.setattr(views, "clock", lambda: float(next(clock)))
    code, _, err = run_cli(capsys, *args, "--tasks", "20", "--run-dir", str(tmp_path / "b"))
    lines = [line for line in err.splitlines() if "episodes" in line]
    assert code == 0, err
    assert lines[0].startswith("toy/eval_in_distribution episodes 4/40 (0:0")
    assert lines[-1].startswith("toy/eval_in_distribution episodes 40/40 (")
    assert len(lines) == 10


class PicklingExecutor(LocalExecutor):
    """Sends every job and its result through pickle, as an executor on other machines must."""

    def __init__(self) -> None:
        super().__init__(4)
        self.jobs: list[EpisodeJob] = []

    async def run(self, job: EpisodeJob) -> EpisodeResult:
        travelled = pickle.loads(pickle.dumps(job))
        assert travelled == job
        self.jobs.append(travelled)
        return pickle.loads(pickle.dumps(await super().run(travelled)))


@pytest.mark.parametrize("rollout", ["batched", "sequential"])
async def test_every_job_pickles_and_gives_the_same_result(tmp_path: Path, rollout: str) -> None:
    """A job is plain data (no lock, connection or closure): pickled on its way to the
    executor and back, the evaluation is the same as with the local executor."""
    config = load_config(overrides={"models": {"agent": "scripted"}, "eval": {"rollout": rollout}})
    design = reference_design("trajectory_retrieval")
    executor = PicklingExecutor()
    async with Run(config, tmp_path / "pickled") as run:
        pickled = await Evaluator(run, ToyDomain(), executor=executor).evaluate(
            design, "train", quick=True
        )
    async with Run(config, tmp_path / "local") as run:
        local = await Evaluator(run, ToyDomain()).evaluate(design, "train", quick=True)
    assert len(executor.jobs) == pickled.n_episodes == 2 + 3 * 3
    memories = {job.memory for job in executor.jobs if job.phase == "deploy"}
    assert memories == ({"frozen"} if rollout == "batched" else {"copy-0", "copy-1", "copy-2"})
    assert {job.memory for job in executor.jobs if job.phase == "build"} == {None}
    assert pickled.per_task == local.per_task and pickled.score == local.score
    assert pickled.memory.retrieve_calls == local.memory.retrieve_calls == 9

"""Reruns and resumes do only what is missing, and keep the meaning of the run they continue."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from alma.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def learned(capsys: pytest.CaptureFixture[str], run_dir: Path) -> str:
    """A short search in ``run_dir`` (reference and one written design); its JSON output."""
    args = ["learn", "--domain", "toy", "--iterations", "0", "--quick", "--json"]
    code, out, _ = run(capsys, *args, "--run-dir", str(run_dir))
    assert code == 0
    return out


def episode_rows(run_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        rows = db.execute("SELECT task_id, data FROM episodes ORDER BY id").fetchall()
    keys = []
    for task_id, data in rows:
        parsed = json.loads(data)
        keys.append((task_id, f"{parsed['phase']}/{parsed['repeat']}"))
    return keys


def agent_calls(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        return int(
            db.execute(
                "SELECT COUNT(*) FROM llm_calls WHERE purpose='agent' AND kind='chat'"
            ).fetchone()[0]
        )


def test_a_rerun_plays_only_the_episodes_an_interrupted_evaluation_lacks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ["eval", "--domain", "toy", "--memory", "trajectory_retrieval", "--tasks", "8"]
    args += ["--max-episodes-concurrency", "1", "--json"]
    whole = tmp_path / "whole"
    code, out, _ = run(capsys, *args, "--run-dir", str(whole))
    assert code == 0
    expected = json.loads(out)
    played_whole = agent_calls(whole)

    part = tmp_path / "part"
    code, _, err = run(capsys, *args, "--run-dir", str(part), "--budget-tokens", "40000")
    assert code == 3 and "budget" in err
    finished = episode_rows(part)
    assert 0 < len(finished) < expected["n_episodes"]
    calls_before = agent_calls(part)

    code, out, _ = run(capsys, *args, "--run-dir", str(part))
    resumed = json.loads(out)
    assert code == 0 and resumed["resumed_episodes"] == len(finished)
    assert resumed["skipped_calls"] == 0  # the reused episodes skipped nothing
    assert resumed["score"] == expected["score"] and resumed["per_task"] == expected["per_task"]
    rows = episode_rows(part)
    assert len(rows) == len(set(rows)) == expected["n_episodes"]  # each episode once
    assert rows[: len(finished)] == finished  # the finished ones kept, not replayed
    # the rerun's model calls are those of the missing episodes (plus the one cut short)
    steps_of_finished = calls_before
    assert agent_calls(part) - calls_before <= played_whole - steps_of_finished + 30


def test_learn_resume_needs_only_the_run_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "search"
    first = ["learn", "--domain", "toy", "--iterations", "1", "--parents-per-iteration", "1"]
    code, _, _ = run(capsys, *first, "--quick", "--run-dir", str(run_dir), "--json")
    assert code == 0
    code, out, _ = run(capsys, "learn", "--resume", str(run_dir), "--iterations", "2", "--json")
    assert code == 0 and json.loads(out)["iterations_done"] == 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--domain", "textworld"], "a run of the 'toy' domain, not 'textworld'"),
        (["--agent-model", "scripted:first"], "models.agent"),
        (["--seed", "7"], "run.seed"),
        (["--tasks", "6"], "eval.tasks"),
    ],
)
def test_learn_resume_refuses_flags_that_change_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    run_dir = tmp_path / "search"
    learned(capsys, run_dir)
    code, _, err = run(capsys, "learn", "--resume", str(run_dir), *flags)
    assert code == 2 and message in err and "Traceback" not in err


def test_eval_refuses_a_run_folder_of_another_domain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "toy-run"
    args = ["eval", "--memory", "no_memory", "--quick", "--run-dir", str(run_dir)]
    code, _, _ = run(capsys, *args, "--domain", "toy")
    assert code == 0
    code, _, err = run(capsys, *args, "--domain", "babaisai")
    assert code == 2 and "a run of the 'toy' domain, not 'babaisai'" in err


def test_show_names_the_domain_and_the_calls_of_each_evaluation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "search"
    first = json.loads(learned(capsys, run_dir))["designs"][0]["id"]
    code, out, _ = run(capsys, "show", str(run_dir), first, "--json")
    evaluations = {e["role"]: e for e in json.loads(out)["evaluations"]}
    evaluation = evaluations["train"]
    assert code == 0 and evaluation["domain"] == "toy" and evaluation["status"] == "done"
    agent = evaluation["usage"]["agent"]
    assert agent["calls"] > 0 and agent["retries"] == 0 and agent["errors"] == 0
    code, out, _ = run(capsys, "show", str(run_dir), first)
    assert "on toy/train" in out and "retries" in out

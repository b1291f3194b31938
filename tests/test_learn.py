"""alma learn end to end with the scripted models: lineage, repair, failure, resume, determinism."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from alma.cli import main

# the paths these tests follow start from no_memory alone (no reference designs seeded)
LEARN = ["learn", "--domain", "toy", "--seed-designs", "none"]
LEARN += ["--meta-model", "scripted", "--agent-model", "scripted"]


def learn(capsys: pytest.CaptureFixture[str], run_dir: Path, *extra: str) -> dict[str, Any]:
    code = main([*LEARN, "--quick", "--json", "--run-dir", str(run_dir), *extra])
    data = json.loads(capsys.readouterr().out)
    assert code == 0, data
    return data


def archive_rows(run_dir: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        return db.execute(
            "SELECT d.id, d.parent, d.iteration, d.status, e.score FROM designs d "
            "LEFT JOIN design_evaluations e ON e.design_id = d.id AND e.role = 'train' "
            "ORDER BY d.id"
        ).fetchall()


def test_learn_builds_an_archive_with_lineage_repair_and_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    # the scripted meta model's answers are a pure function of prompt and seed; with seed 8 it
    # writes a design that needs repair and one beyond repair within two iterations (on the
    # classic toy games, whose description and episodes the prompts carry)
    config = tmp_path / "alma.toml"
    config.write_text('[domains.toy]\nprofile = "classic"\n', encoding="utf-8")
    settings = ["--config", str(config), *LEARN, "--quick", "--json", "--run-dir", str(run_dir)]
    code = main([*settings, "--iterations", "2", "--seed", "8"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0, data
    designs = data["designs"]
    assert data["reference_score"] is not None and data["iterations_done"] == 2
    evaluated = [d for d in designs if d["status"] == "evaluated"]
    assert len(evaluated) >= 3
    assert any(d["parent"] for d in evaluated)  # lineage
    assert any(d["status"] == "failed_verification" for d in designs)
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        repaired = db.execute(
            "SELECT subject FROM verifications GROUP BY subject "
            "HAVING COUNT(*) > 1 AND MAX(attempt) = MAX(CASE WHEN passed THEN attempt END)"
        ).fetchall()
        episodes = db.execute("SELECT label, COUNT(*) FROM episodes GROUP BY label").fetchall()
        meta_calls = db.execute("SELECT COUNT(*) FROM llm_calls WHERE purpose='meta'").fetchone()
    assert repaired, "no design was repaired"
    assert all(count == 11 for _, count in episodes)  # every evaluation ran once, fully
    assert meta_calls[0] > 0
    for row in designs:
        assert (run_dir / "designs" / f"{row['id']}.py").is_file()


def test_archive_show_and_eval_of_an_archived_design(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    data = learn(capsys, run_dir, "--iterations", "1")
    child = next(d for d in data["designs"] if d["parent"] and d["status"] == "evaluated")
    assert main(["archive", str(run_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["id"] for row in rows} == {row["id"] for row in data["designs"]}
    assert main(["show", str(run_dir), child["id"][:6], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lineage"][-1] == child["id"] and "class" in shown["source"]
    assert shown["verifications"][-1]["passed"]
    code = main(
        [
            "eval",
            "--domain",
            "toy",
            "--design",
            child["id"],
            "--run-dir",
            str(run_dir),
            "--split",
            "eval_in_distribution",
            "--quick",
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["design_id"] == child["id"]
    assert main(["show", str(run_dir), child["id"], "--json"]) == 0
    roles = {e["role"] for e in json.loads(capsys.readouterr().out)["evaluations"]}
    assert roles == {"train", "eval_in_distribution"}
    assert main(["show", str(run_dir), "zzzz"]) == 2


def test_same_seed_same_archive(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    learn(capsys, tmp_path / "a", "--iterations", "2")
    learn(capsys, tmp_path / "b", "--iterations", "2")
    assert archive_rows(tmp_path / "a") == archive_rows(tmp_path / "b")


def test_resume_after_kill_9(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """SIGKILL in the middle of an iteration, resume: the same archive as an uninterrupted run,
    and no evaluation run twice."""
    whole = tmp_path / "whole"
    learn(capsys, whole, "--iterations", "3")

    killed = tmp_path / "killed"
    slow = [*LEARN[:-1], "scripted@0.004", "--quick", "--iterations", "3", "--run-dir", str(killed)]
    process = subprocess.Popen(
        [sys.executable, "-m", "alma", *slow, "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=os.environ.copy(),
    )
    database = killed / "alma.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.1)
        try:
            with sqlite3.connect(database) as db:
                if db.execute("SELECT COUNT(*) FROM selections").fetchone()[0] >= 2:
                    break
        except sqlite3.OperationalError:
            continue
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    code = main([*slow[:-2], "--resume", str(killed), "--json"])  # the same settings
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    assert archive_rows(killed) == archive_rows(whole)
    with sqlite3.connect(database) as db:
        statuses = db.execute("SELECT status FROM evaluations").fetchall()
        per_label = db.execute("SELECT label, COUNT(*) FROM episodes GROUP BY label").fetchall()
    with sqlite3.connect(whole / "alma.sqlite") as db:
        evaluations = db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    assert all(status == ("done",) for status in statuses), statuses
    assert len(statuses) == evaluations
    assert all(count == 11 for _, count in per_label), per_label


def test_a_failing_meta_model_costs_children_not_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"match": ".", "response": "this is not JSON"}]))
    code = main(
        [
            *LEARN[:5],
            "--meta-model",
            f"scripted:{rules}",
            "--agent-model",
            "scripted",
            "--quick",
            "--iterations",
            "1",
            "--json",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["iterations_done"] == 1
    assert [d["name"] for d in data["designs"]] == ["no_memory"]
    with sqlite3.connect(tmp_path / "run" / "alma.sqlite") as db:
        failures = db.execute("SELECT key FROM meta WHERE key LIKE 'meta_failure:%'").fetchall()
    assert len(failures) == 2  # the design from scratch, and no_memory's child


def test_learn_logs_a_line_per_stage_when_not_on_a_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """In a log file or a pipe there is no spinner: each change of stage is one line."""
    code = main([*LEARN, "--quick", "--iterations", "1", "--run-dir", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = [line for line in captured.err.splitlines() if line.startswith("iteration ")]
    assert any("reference" in line for line in lines), captured.err
    assert any(line.startswith("iteration 1/1 |") and "evaluating" in line for line in lines)
    assert len(lines) == len(set(lines))  # a line per change, not per model call
    # the archive is shown once at the end, not also as the last iteration's table
    assert "best designs" not in captured.out + captured.err
    assert captured.out.count("designs (reference score") == 1


def test_learn_starts_from_your_designs_and_compare_takes_archived_ids(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mine = Path(__file__).parent.parent / "docs" / "examples" / "winning_routes.py"
    run_dir = tmp_path / "run"
    args = ["learn", "--domain", "toy", "--quick", "--iterations", "1", "--seed-designs", "none"]
    args += ["--parents-per-iteration", "2", "--seed-design", str(mine), "--json"]
    code = main([*args, "--run-dir", str(run_dir)])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    seeded = [d for d in data["designs"] if d["name"] == "winning_routes"]
    assert len(seeded) == 1 and seeded[0]["origin"] == "imported" and seeded[0]["iteration"] == 0
    assert seeded[0]["score"] is not None  # evaluated before the search
    with sqlite3.connect(run_dir / "alma.sqlite") as db:
        chosen = [json.loads(r[0]) for r in db.execute("SELECT parents FROM selections")]
    assert any(seeded[0]["id"] in parents for parents in chosen), chosen  # a parent like any
    ids = f"no_memory,{seeded[0]['id'][:8]}"
    code = main(["compare", "--domain", "toy", "--memories", ids, "--quick", "--json",
                 "--run-dir", str(run_dir)])  # fmt: skip
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert code == 0 and [r["design"] for r in rows] == ["no_memory", "winning_routes"]


def test_dry_run_plans_and_bounds_what_learn_spends(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [*LEARN, "--quick", "--iterations", "1", "--parents-per-iteration", "2", "--json"]
    code = main([*args, "--dry-run", "--run-dir", str(tmp_path / "planned")])
    planned = json.loads(capsys.readouterr().out)
    assert code == 0 and not (tmp_path / "planned").exists()  # nothing was run
    # the reference, the design from scratch, 1 x 2 children, 3 held-out evaluations
    assert planned["evaluations"] == 1 + 1 + 2 + 3 and planned["episodes_per_evaluation"] == 11
    code = main([*args, "--run-dir", str(tmp_path / "run")])
    spent = json.loads(capsys.readouterr().out)["spend"]["by_purpose"]
    assert code == 0
    for role in ("agent", "meta"):  # an upper bound of what the search really spent
        assert 0 < spent[role]["calls"] <= planned["by_role"][role]["calls"]
        assert 0 < spent[role]["tokens"] <= planned["by_role"][role]["tokens"]

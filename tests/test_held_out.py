"""``alma learn`` ends with its answer on tasks the search never saw."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alma.cli import main


def learn(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, dict[str, Any], str]:
    args = ["learn", "--domain", "toy", "--iterations", "1", "--parents-per-iteration", "1"]
    code = main([*args, "--quick", *flags])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if "--json" in flags else {}, captured.out


def test_learn_compares_its_best_design_on_held_out_tasks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, data, _ = learn(capsys, "--run-dir", "run", "--json")  # baselines seeded by default
    rows = data["held_out"]
    references = {d["name"] for d in data["designs"] if d["origin"] == "reference"}
    assert references == {"no_memory", "trajectory_retrieval", "reasoning_bank"} | {
        "dynamic_cheatsheet",
        "g_memory",
    }
    spend = data["spend"]
    assert set(spend["by_purpose"]) == {"meta", "agent", "memory"}
    assert spend["total"]["tokens"] > 0
    assert code == 0 and isinstance(rows, list) and len(rows) == 3
    names = [row["design"] for row in rows]
    designs = {d["name"]: d for d in data["designs"]}
    assert names[0] == "no_memory"
    assert designs[names[1]]["origin"] == "generated"  # the best learned design
    assert designs[names[2]]["origin"] == "reference"  # the best reference design
    for row in rows[1:]:
        assert row["p_value"] is not None and row["gain_ci95"] is not None
        assert row["tokens_per_episode"] > 0
    # the held-out scores are kept with the designs, under the split's name
    code = main(["show", "run", rows[1]["design_id"], "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert {e["role"] for e in shown["evaluations"]} == {"train", "eval_in_distribution"}


def test_without_seeded_baselines_the_reference_is_trajectory_retrieval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, out = learn(capsys, "--seed-designs", "none")
    assert code == 0 and "held-out eval_in_distribution tasks" in out
    assert "trajectory_retrieval" in out and "gain: over no_memory" in out


def test_held_out_none_skips_the_comparison(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with (tmp_path / "alma.toml").open("a") as settings:
        settings.write('[learn]\nheld_out = "none"\n')
    code, data, _ = learn(capsys, "--json")
    assert code == 0 and data["held_out"] == []

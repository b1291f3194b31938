"""The paper's analyses as commands, end to end on toy with scripted models."""

import json
from pathlib import Path
from typing import Any

import pytest

from alma.cli import main


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short search whose acting model follows what its memory notes say (scripted:recall)."""
    run_dir = tmp_path_factory.mktemp("analyses") / "run"
    args = ["learn", "--domain", "toy", "--agent-model", "scripted:recall"]
    args += ["--meta-model", "scripted", "--quick", "--iterations", "1"]
    args += ["--parents-per-iteration", "1", "--run-dir", str(run_dir), "--json"]
    assert main(args) == 0
    return run_dir


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_shift_compares_the_search_s_answer_out_of_distribution(
    searched: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(capsys, "analyse", "shift", str(searched))
    rows = data["rows"]
    assert rows[0]["design"] == "no_memory" and len(rows) == 3
    shown = run_json(capsys, "show", str(searched), rows[1]["design_id"])
    assert "eval_out_of_distribution" in {e["role"] for e in shown["evaluations"]}


def test_transfer_plays_the_designs_with_another_acting_model(
    searched: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run_json(
        capsys, "analyse", "transfer", str(searched), "--agent-model", "scripted",
        "--run-dir", str(tmp_path / "transfer"),
    )  # fmt: skip
    assert Path(data["run_dir"]) == tmp_path / "transfer" and len(data["rows"]) == 3
    config = (tmp_path / "transfer" / "config.toml").read_text(encoding="utf-8")
    assert 'agent = "scripted"' in config  # the other model, the search's other settings


def test_scaling_shows_success_as_memory_grows(
    searched: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    designs = run_json(capsys, "archive", str(searched))  # reference designs seeded by default
    design = next(d["id"] for d in designs if d["name"] == "trajectory_retrieval")
    data = run_json(
        capsys, "analyse", "scaling", str(searched), "--design", design, "--sizes", "0,2"
    )  # fmt: skip
    first, last = data["points"]
    assert (first["build_tasks"], last["build_tasks"]) == (0, 2)
    assert first["design"]["deploy_tasks"] == last["design"]["deploy_tasks"]  # the same tasks
    assert len(last["design"]["build_tasks"]) == 2 and first["design"]["build_tasks"] == []
    # with nothing built, memory gives nothing; two episodes in, the recalling agent gains
    assert first["design"]["score"] == pytest.approx(first["no_memory"]["score"])
    assert last["design"]["score"] > last["no_memory"]["score"]
    code = main(["analyse", "scaling", str(searched), "--sizes", "0,99"])
    assert code == 2 and "build sizes must be between 0 and" in capsys.readouterr().err

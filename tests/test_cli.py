import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alma import __version__
from alma.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and __version__ in out


def test_domains_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "domains", "--json")
    toy = next(row for row in json.loads(out) if row["name"] == "toy")
    assert code == 0 and toy["installed"]
    assert all(toy["tasks"][split] >= 50 for split in toy["tasks"])


def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "--json")
    rows = {(row["spec"], row["kind"]): row for row in json.loads(out)}
    assert code == 0 and rows[("scripted", "chat")]["usable"]
    assert not rows[("openai:gpt-5-nano", "chat")]["usable"]  # no key in the tests


def test_play_json_saves_the_episode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(
        capsys,
        "play",
        "--domain",
        "toy",
        "--agent-model",
        "scripted",
        "--json",
        "--run-dir",
        str(tmp_path / "run"),
    )
    result = json.loads(out)
    assert code == 0
    assert result["steps_used"] == len(result["episode"]["steps"]) > 0
    assert result["tokens"] > 0 and result["cost_usd"] == 0
    assert result["ledger"]["by_purpose"]["agent"]["calls"] >= result["steps_used"]
    db = sqlite3.connect(tmp_path / "run" / "alma.sqlite")
    assert db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] >= result["steps_used"]
    assert (tmp_path / "run" / "config.toml").is_file()


def test_play_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "play", "--domain", "toy", "--task", "toy-train-001")
    assert code == 0 and "toy-train-001" in out and "steps" in out and "run saved in" in out


def test_render_draws_each_step_or_refuses_before_playing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "play", "--domain", "toy", "--render", "--run-dir", str(tmp_path))
    assert code == 2 and "no drawing for humans" in err
    assert not (tmp_path / "alma.sqlite").exists()  # refused before any episode
    code, out, _ = run(
        capsys, "play", "--domain", "babaisai", "--render", "--max-steps", "3", "--json"
    )
    frames = json.loads(out)["frames"]
    steps = json.loads(out)["steps_used"]
    assert code == 0 and len(frames) == steps + 1 and all("|" in frame for frame in frames)
    code, out, _ = run(capsys, "play", "--domain", "babaisai", "--render", "--max-steps", "2")
    summary = out.index(" steps, ")  # the episode's summary line comes after the game
    assert code == 0 and out.index("start") < out.index("after step 2") < summary  # live


def test_budget_reached_mid_episode(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(
        capsys,
        "play",
        "--domain",
        "toy",
        "--task",
        "toy-eval-ood-000",
        "--budget-tokens",
        "1500",
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert code == 3
    assert "token budget reached" in err and "saved" in err
    db = sqlite3.connect(tmp_path / "run" / "alma.sqlite")
    reason, steps = db.execute("SELECT reason, steps FROM episodes").fetchone()
    assert reason == "budget" and steps >= 1
    assert db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == steps


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["play", "--domain", "toy", "--agent-model", "gpt-5"], "unknown model spec 'gpt-5'"),
        (
            ["play", "--domain", "toy", "--agent-model", "openai:gpt-5-nano"],
            "OPENAI_API_KEY is not set",
        ),
        (["play", "--domain", "chess"], "unknown domain 'chess'"),
        (
            ["play", "--domain", "toy", "--task", "toy-train-999999"],
            "has no task 'toy-train-999999'",
        ),
        (["play", "--domain", "toy", "--split", "test"], "is not one of"),
        (
            ["play", "--domain", "toy", "--agent-model", "openai:gpt-5@extreme"],
            "unknown reasoning effort",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_invalid_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "alma.toml").write_text("[llm]\nretries = 3\n")
    code, _, err = run(capsys, "config", "show")
    assert code == 2 and "unknown key 'llm.retries'" in err and "hint" in err


def test_config_show_merges_file_and_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "alma.toml").write_text(
        '[models]\nagent = "openai:gpt-5-mini"\n[budget]\nusd = 4.0\n'
    )
    code, out, _ = run(capsys, "config", "show", "--json", "--budget-usd", "1.5")
    data = json.loads(out)
    assert code == 0
    assert data["models"]["agent"] == "openai:gpt-5-mini" and data["budget"]["usd"] == 1.5


def test_unreachable_base_url(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with (tmp_path / "alma.toml").open("a") as settings:
        settings.write("[llm]\nmax_retries = 1\nbackoff_base_s = 0.01\n")
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code, _, err = run(
        capsys, "play", "--domain", "toy", "--agent-model", "openai:gpt-5-nano", "--base-url", url
    )
    assert code == 2 and url in err and "Traceback" not in err


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--debug", "play", "--domain", "chess")
    assert code == 2 and "Traceback" in err


def test_max_steps_caps_the_episode(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "play",
        "--domain",
        "toy",
        "--task",
        "toy-eval-ood-000",
        "--agent-model",
        "scripted:first",
        "--max-steps",
        "3",
        "--json",
    )
    result = json.loads(out)
    assert code == 0 and result["steps_used"] == 3 and result["reason"] == "step_limit"


def test_check_names_the_file_and_line_of_a_finding(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    design = tmp_path / "leaky.py"
    design.write_text(
        "from alma.memory import MemoryDesign\n"
        "import socket\n"
        "\n"
        "class Leaky(MemoryDesign):\n"
        "    async def retrieve(self, start):\n"
        "        return {}\n"
        "\n"
        "    async def update(self, episode):\n"
        "        return None\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "check", str(design))
    assert code == 0 and out.splitlines()[0].startswith(f"{design}: passed")
    assert f"warning {design}:2: imports socket" in out
    design.write_text(design.read_text(encoding="utf-8") + "    oops(\n", encoding="utf-8")
    code, _, err = run(capsys, "check", str(design))
    assert code == 2 and "syntax error on line 10" in err, err


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("scriptd", "scripted"), ("local-smal", "local-small"), ("gpt-5-nano", "openai:gpt-5-nano")],
)
def test_a_mistyped_model_spec_gets_did_you_mean(
    capsys: pytest.CaptureFixture[str], typed: str, meant: str
) -> None:
    code, _, err = run(capsys, "play", "--domain", "toy", "--agent-model", typed)
    assert code == 2 and f"unknown model spec {typed!r} (did you mean {meant}?)" in err


def test_every_command_takes_json() -> None:
    import typer

    from alma.cli.app import app

    def commands(group: Any, prefix: str) -> list[tuple[str, Any]]:
        found = []
        for name, command in group.commands.items():
            found.append((prefix + name, command))  # a group's own listing: alma domains
            if hasattr(command, "commands"):
                found += commands(command, f"{prefix}{name} ")
        return found

    listed = commands(typer.main.get_command(app), "")
    missing = [name for name, c in listed if not any("--json" in p.opts for p in c.params)]
    assert missing == ["analyse", "config"], missing  # groups of commands, each with --json
    assert len(listed) > 15


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "learn", "--help")
    text = " ".join(out.replace("│", " ").split())  # the help's boxes and wrapping, undone
    assert code == 0
    for shown in ("model spec of the acting agent (default: local)", "(default: batched)"):
        assert shown in text, shown


def test_tables_fit_80_columns(tmp_path: Path) -> None:
    import asyncio

    from rich.console import Console

    from alma import api
    from alma.cli import views

    config = api.configure(agent_model="scripted", meta_model="scripted", learn={"quick": True})
    designs = ["no_memory", "trajectory_retrieval", "reasoning_bank", "dynamic_cheatsheet"]
    compared = asyncio.run(api.compare(config, "toy", designs, quick=True, run_dir=tmp_path / "c"))
    learned = asyncio.run(api.learn(config, "toy", run_dir=tmp_path / "l"))
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    views.show_comparison(console, compared.rows, "eval_in_distribution")
    with api.open_run(learned.run_dir) as run:
        rows = run.designs()
        console.print(views.archive_table(rows, run.reference_score()))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name in designs + [row["name"] for row in rows]:  # every name on one line, unfolded
        assert any(f" {name} " in line for line in lines), name
    for row in rows:
        assert row["id"][:8] in text and row["id"] not in text  # ids shortened alike

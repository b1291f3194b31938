"""The library's front door: settings from keywords, what a command will run, runs read back."""

import asyncio
from pathlib import Path

import pytest

from alma import api
from alma.errors import ConfigError


def test_configure_takes_the_commands_settings_as_keywords(tmp_path: Path) -> None:
    defaults = tmp_path / "defaults.toml"
    defaults.write_text("", encoding="utf-8")
    config = api.configure(
        agent_model="scripted", seed=7, eval={"tasks": 6}, learn={"iterations": 2}
    )
    assert (config.models.agent, config.run.seed) == ("scripted", 7)
    assert (config.eval.tasks, config.learn.iterations) == (6, 2)
    assert api.configure(defaults, seed=None).models.agent == "local"  # None: the default
    with pytest.raises(ConfigError):
        api.configure(eval={"rollout": "sideways"})


def test_embedded_models_say_what_runs_and_what_downloads(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    defaults = tmp_path / "defaults.toml"
    defaults.write_text("", encoding="utf-8")
    config = api.configure(defaults, meta_model="scripted")
    config.local.models_dir = empty
    (line,) = api.embedded_models(config, ("meta", "agent", "memory"))
    assert line.startswith("embedded model local (Qwen2.5-Coder-1.5B-Instruct")
    assert "for the agent and memory roles" in line
    assert "first use downloads 1.1 GB (`alma models install local`)" in line
    assert api.embedded_models(api.configure(agent_model="scripted"), ("agent",)) == []


def test_learn_then_read_the_run(tmp_path: Path) -> None:
    config = api.configure(agent_model="scripted", meta_model="scripted", learn={"quick": True})
    seen: list[int] = []
    outcome = asyncio.run(
        api.learn(
            config,
            "toy",
            run_dir=tmp_path / "run",
            on_iteration=lambda number, rows: seen.append(number),
        )
    )
    assert seen == list(range(1, config.learn.iterations + 1))
    page = (outcome.run_dir / "report.html").read_text(encoding="utf-8")  # kept up to date
    assert page.lstrip().lower().startswith("<!doctype html") and "held" in page.lower()
    with api.open_run(outcome.run_dir) as run:
        rows = run.designs()
        best = run.design(rows[0]["id"][:6])
        assert best["id"] == rows[0]["id"] and best["source"] == run.source(best["id"]).source

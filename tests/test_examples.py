"""The ready-made configurations in examples/: each loads, and each domain's runs end to end.

The end-to-end runs swap the configured models for the scripted ones and the hashing embedder
(flags override the file), so they are fast and offline; everything else comes from the file.
TextWorld and BabaIsAI are left out of the end-to-end runs: their games take minutes to
generate on a fresh machine.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from alma.cli import main
from alma.config import load_config
from alma.domains.registry import domain_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FILES = sorted(EXAMPLES.glob("*.toml"))
ORIGINAL_DOMAINS = ["alfworld", "textworld", "babaisai", "minihack"]
SCRIPTED = ["--agent-model", "scripted", "--memory-model", "scripted", "--embedder", "hash"]


def test_every_domain_has_its_examples() -> None:
    names = {path.stem for path in FILES}
    for domain in ORIGINAL_DOMAINS:
        assert {domain, f"{domain}-laptop"} <= names
    assert {"toy-laptop", "local-server"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_loads(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(path)
    assert main(["--config", str(path), "config", "show"]) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    assert shown["models"]["agent"] == config.models.agent
    for key, value in tomllib.loads(path.read_text()).get("eval", {}).items():
        assert getattr(config.eval, key) == value  # nothing in the file is silently dropped


@pytest.mark.parametrize("domain", ORIGINAL_DOMAINS)
def test_original_setups_follow_the_original(domain: str) -> None:
    config = load_config(EXAMPLES / f"{domain}.toml")
    assert config.models.meta == "openai:gpt-5"
    assert config.models.agent == "openai:gpt-5-nano@low"
    assert config.eval.rollout == "batched"
    assert config.eval.max_update_concurrency == config.eval.max_retrieve_concurrency == 10
    assert config.learn.iterations == 10 and config.learn.split == "train"


@pytest.mark.parametrize("domain", ["toy", "minihack", "alfworld"])
def test_laptop_example_runs_end_to_end(
    domain: str, capsys: pytest.CaptureFixture[str], domain_cache: Path
) -> None:
    if not domain_spec(domain).installed():
        pytest.skip(f"{domain} is not installed")
    path = EXAMPLES / f"{domain}-laptop.toml"
    assert load_config(path).models.agent == "local"  # the embedded default, swapped below
    args = ["--config", str(path), "eval", "--domain", domain, "--memory", "trajectory_retrieval"]
    code = main([*args, *SCRIPTED, "--quick", "--max-steps", "3", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["status"] == "done" and result["episode_errors"] == 0
    assert result["n_episodes"] == 2 + 3 * load_config(path).eval.repeats


def test_toy_example_learns_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    path = EXAMPLES / "toy-laptop.toml"
    args = ["--config", str(path), "learn", "--domain", "toy", "--meta-model", "scripted"]
    code = main([*args, *SCRIPTED, "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["stopped"] is None
    assert result["iterations_done"] == load_config(path).learn.iterations == 1

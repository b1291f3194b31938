from pathlib import Path

import pytest

from alma.config import AlmaConfig, load_config
from alma.errors import ConfigError


def test_defaults_without_file(tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    config = load_config(cwd=empty)
    assert config == AlmaConfig()
    assert (config.models.agent, config.models.meta, config.models.embedder) == ("local",) * 3


def test_the_folder_settings_file_is_read(tmp_path: Path) -> None:
    assert load_config(cwd=tmp_path).models.agent == "scripted"  # conftest's alma.toml


def test_file_then_flags(tmp_path: Path) -> None:
    (tmp_path / "alma.toml").write_text(
        '[models]\nagent = "openai:gpt-5-nano@low"\n[budget]\nusd = 2.5\n[llm]\ntimeout_s = 9\n'
    )
    config = load_config(cwd=tmp_path, overrides={"budget": {"usd": 1.0, "tokens": None}})
    assert config.models.agent == "openai:gpt-5-nano@low"
    assert config.budget.usd == 1.0  # the flag wins
    assert config.budget.tokens is None
    assert config.llm.timeout_s == 9


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "alma.toml"
    path.write_text("[llm]\ntimeot_s = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'llm.timeot_s'"):
        load_config(path)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "alma.toml"
    path.write_text('[budget]\nusd = "lots"\n')
    with pytest.raises(ConfigError, match=r"bad value for 'budget.usd'"):
        load_config(path)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "alma.toml"
    path.write_text("[llm\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_price_overrides(tmp_path: Path) -> None:
    path = tmp_path / "alma.toml"
    path.write_text('[prices."my-model"]\ninput = 1.0\noutput = 2.0\n')
    assert load_config(path).prices["my-model"].output == 2.0

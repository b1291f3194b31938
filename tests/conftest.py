from pathlib import Path

import pytest

from alma.llm.weights import models_dir

#: The settings every test starts from (in its folder's alma.toml): the scripted models and the
#: hashing embedder, so tests are fast and deterministic; tests of the real models say so.
TEST_SETTINGS = (
    '[models]\nagent = "scripted"\nmeta = "scripted"\nembedder = "hash"\n'
    # the real models' weights are shared (installing them per test would take minutes)
    f'[local]\nmodels_dir = "{models_dir()}"\n'
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own folder with its own user cache and no OpenAI settings."""
    (tmp_path / "alma.toml").write_text(TEST_SETTINGS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ALMA_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path

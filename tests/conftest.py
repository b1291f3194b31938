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
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ALMA_DEBUG", "ALMA_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("alma-cache")


@pytest.fixture
def domain_cache(_session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One cache folder shared by the whole test session (``ALMA_CACHE_DIR``), so games a real
    domain generates once are reused by the next test instead of generated again."""
    monkeypatch.setenv("ALMA_CACHE_DIR", str(_session_cache))
    return _session_cache

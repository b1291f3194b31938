import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from alma.domains.base import StepLimit
from alma.domains.checker import check_domain
from alma.domains.registry import domain_specs, find_task, get_domain, open_env
from alma.errors import MissingDependencyError, UnknownDomainError

# the domains that need no package (their games are instant); each real game domain runs the
# checker in its own test file, on tasks whose games are quick to generate
BUILT_IN = sorted(name for name, spec in domain_specs().items() if not spec.requires)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_domain_passes_the_checker(name: str) -> None:
    check_domain(get_domain(name))


def test_a_spec_whose_module_is_missing_is_not_installed() -> None:
    from alma.domains.registry import DomainSpec

    assert not DomainSpec("ghost", "alma.domains.no_such_module:Ghost").installed()
    assert not DomainSpec("ghost", "no_such_package.sub:Ghost").installed()
    assert DomainSpec("toy", "alma.domains.toy:ToyDomain").installed()


def test_the_cache_folder_follows_alma_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alma import paths
    from alma.llm.weights import models_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir("textworld") == tmp_path / "xdg" / "alma" / "textworld"
    monkeypatch.setenv("ALMA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert paths.cache_dir("textworld") == tmp_path / "elsewhere" / "textworld"
    assert models_dir() == tmp_path / "elsewhere" / "models"


def test_unknown_domain_and_task() -> None:
    with pytest.raises(UnknownDomainError, match="unknown domain 'chess'") as caught:
        get_domain("chess")
    assert "toy" in (caught.value.hint or "")
    with pytest.raises(UnknownDomainError, match="has no task 'nope'") as caught:
        find_task(get_domain("toy", profile="classic"), "nope")
    assert "toy-train-000" in (caught.value.hint or "")
    assert caught.value.hint == (
        "task ids run toy-train-000 to -049, toy-eval-id-000 to -049, toy-eval-ood-000 to -049"
    )
    with pytest.raises(UnknownDomainError) as caught:  # ids that name families: examples
        find_task(get_domain("babaisai"), "nope")
    hint = caught.value.hint or ""
    assert hint.startswith("task ids look like babaisai-balrog-train-goto_win-000")


def test_open_env_applies_the_step_limit() -> None:
    domain = get_domain("toy")
    env = open_env(domain, find_task(domain, "toy-train-000"))
    assert isinstance(env, StepLimit) and env.limit == domain.step_limit


def test_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from alma.domains import registry

    spec = registry.DomainSpec(
        "ghost",
        "ghost_pkg:Domain",
        requires=("ghost_pkg_not_installed",),
        packages=("ghost==1.0",),
        no_deps=("ghost-extra==2.0",),
    )
    monkeypatch.setattr(registry, "BUILTIN", (*registry.BUILTIN, spec))
    with pytest.raises(MissingDependencyError, match="not installed") as caught:
        get_domain("ghost")
    assert caught.value.hint == (
        "run `alma domains install ghost` (that is: "
        "pip install 'ghost==1.0' && pip install --no-deps 'ghost-extra==2.0')"
    )
    assert spec.pip_steps() == [
        ["install", "ghost==1.0"],
        ["install", "--no-deps", "ghost-extra==2.0"],
    ]


def test_domain_options_come_from_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    from alma.cli import main

    Path("alma.toml").write_text(
        Path("alma.toml").read_text() + "\n[domains.toy]\ntasks_per_split = 4\n"
    )
    assert main(["domains", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["toy"]["tasks"]["train"] == 4
    Path("alma.toml").write_text(
        Path("alma.toml").read_text() + "\n[domains.babaisai]\nno_such_option = 1\n"
    )
    assert main(["play", "--domain", "babaisai"]) == 2
    err = capsys.readouterr().err
    assert "does not take the options no_such_option" in err and "[domains.babaisai]" in err


def test_reports_label_generated_tasks() -> None:
    from alma.domains.registry import domain_label, tasks_source

    generated = SimpleNamespace(name="house", details={"source": "generated"})
    described = SimpleNamespace(name="grid", details={"source": "levels from a paper"})
    assert domain_label(generated) == "house[generated]"  # type: ignore[arg-type]
    assert tasks_source(described) == ""  # type: ignore[arg-type]
    assert domain_label(described) == "grid"  # type: ignore[arg-type]
    assert domain_label(get_domain("toy")) == "toy"


@pytest.mark.domain
def test_domains_prepare(capsys: pytest.CaptureFixture[str], domain_cache: Path) -> None:
    from alma.cli import main

    assert main(["domains", "prepare", "toy"]) == 0
    assert "need no preparation" in capsys.readouterr().out
    assert main(["domains", "prepare", "toy", "--split", "bogus"]) == 2
    capsys.readouterr()
    if not domain_specs()["alfworld"].installed():
        pytest.skip("alfworld is not installed")
    Path("alma.toml").write_text(
        Path("alma.toml").read_text() + "\n[domains.alfworld]\ntasks_per_split = 6\n"
    )
    assert main(["domains", "prepare", "alfworld", "--split", "train", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["train"]
    assert first["generated"] + first["cached"] == 6
    assert main(["domains", "prepare", "alfworld", "--split", "train", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["train"]
    assert (again["generated"], again["cached"]) == (0, 6)  # the second time from the cache

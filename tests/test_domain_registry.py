import pytest

from alma.domains.base import StepLimit
from alma.domains.checker import check_domain
from alma.domains.registry import domain_specs, find_task, get_domain, open_env
from alma.errors import MissingDependencyError, UnknownDomainError

INSTALLED = sorted(name for name, spec in domain_specs().items() if spec.installed())


@pytest.mark.parametrize("name", INSTALLED)
def test_every_installed_domain_passes_the_checker(name: str) -> None:
    check_domain(get_domain(name))


def test_unknown_domain_and_task() -> None:
    with pytest.raises(UnknownDomainError, match="unknown domain 'chess'") as caught:
        get_domain("chess")
    assert "toy" in (caught.value.hint or "")
    with pytest.raises(UnknownDomainError, match="has no task 'nope'") as caught:
        find_task(get_domain("toy"), "nope")
    assert "toy-train-000" in (caught.value.hint or "")


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
        install="pip install ghost",
    )
    monkeypatch.setattr(registry, "BUILTIN", (*registry.BUILTIN, spec))
    with pytest.raises(MissingDependencyError, match="not installed") as caught:
        get_domain("ghost")
    assert caught.value.hint == "pip install ghost"

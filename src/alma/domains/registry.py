"""Which domains exist, whether they are installed, and how to get them.

Built-in domains are listed here; third-party packages add theirs through the ``alma.domains``
entry-point group (``name = "package.module:DomainClass"``), the way Gymnasium registers
environments. Every environment the harness opens goes through :func:`open_env`, which applies
the domain's step limit.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from alma.domains.base import Domain, StepLimit, TextEnv
from alma.errors import MissingDependencyError, UnknownDomainError
from alma.types import SPLITS, Task


@dataclass(frozen=True)
class DomainSpec:
    name: str
    target: str  # "module:attribute" of the Domain class or factory
    requires: tuple[str, ...] = ()  # importable modules it needs
    install: str = ""  # how to install what it needs
    summary: str = ""

    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)


BUILTIN: tuple[DomainSpec, ...] = (
    DomainSpec(
        "toy",
        "alma.domains.toy:ToyDomain",
        summary="rooms, keys and doors; built in, instant, for tests and trying things out",
    ),
)


@cache
def _plugins() -> tuple[DomainSpec, ...]:
    found = []
    for entry in entry_points(group="alma.domains"):
        found.append(
            DomainSpec(
                entry.name,
                entry.value,
                install=f"provided by {entry.dist.name if entry.dist else 'a plugin'}",
            )
        )
    return tuple(found)


def domain_specs() -> dict[str, DomainSpec]:
    specs = {spec.name: spec for spec in _plugins()}
    specs.update({spec.name: spec for spec in BUILTIN})  # built-ins win over plugins
    return specs


def get_domain(name: str, **options: Any) -> Domain:
    specs = domain_specs()
    spec = specs.get(name)
    if spec is None:
        raise UnknownDomainError(
            f"unknown domain {name!r}",
            hint=f"known domains: {', '.join(sorted(specs))} (see `alma domains`)",
        )
    if not spec.installed():
        raise MissingDependencyError(
            f"domain {name!r} is not installed", hint=spec.install or "see `alma domains`"
        )
    module_name, _, attribute = spec.target.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    domain: Domain = factory(**options)
    return domain


def find_task(domain: Domain, task_id: str) -> Task:
    for split in SPLITS:
        for task in domain.tasks(split):
            if task.id == task_id:
                return task
    examples = [task.id for task in list(domain.tasks("train"))[:3]]
    raise UnknownDomainError(
        f"domain {domain.name!r} has no task {task_id!r}",
        hint=f"task ids look like {', '.join(examples)}; `alma domains` shows the counts",
    )


def open_env(domain: Domain, task: Task, limit: int | None = None) -> TextEnv:
    """The task's environment, ended after the domain's step limit (or a lower ``limit``)."""
    cap = domain.step_limit if limit is None else min(limit, domain.step_limit)
    return StepLimit(domain.make_env(task), cap)

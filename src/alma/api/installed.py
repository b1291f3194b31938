"""What is installed here and how it is set: domains, models and their weights, the settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alma.config import AlmaConfig, config_as_toml_dict
from alma.domains.base import Described, PrepareReport, Preparing
from alma.domains.registry import configured_domain, domain_label, domain_spec, domain_specs
from alma.progress import Listener, listening
from alma.types import SPLITS, Split


def settings_table(config: AlmaConfig) -> dict[str, Any]:
    """The settings as ``alma.toml`` would hold them."""
    return config_as_toml_dict(config)


def domains(config: AlmaConfig) -> list[dict[str, Any]]:
    """Every domain: whether it is installed, how to install it, and, when installed, its step
    limit, tasks per split and details."""
    rows = []
    for spec in domain_specs().values():
        row: dict[str, Any] = {
            "name": spec.name,
            "label": spec.name,
            "installed": spec.installed(),
            "install": spec.install or "built in",
            "summary": spec.summary,
            "tasks": {},
        }
        if row["installed"]:
            domain = configured_domain(config, spec.name)
            row["label"] = domain_label(domain)
            row["step_limit"] = domain.step_limit
            row["tasks"] = {split: len(domain.tasks(split)) for split in SPLITS}
            row.update(domain.details if isinstance(domain, Described) else {})
        rows.append(row)
    return rows


def prepare_domain(
    config: AlmaConfig,
    name: str,
    splits: Sequence[Split] = SPLITS,
    *,
    on_progress: Listener | None = None,
) -> dict[str, PrepareReport] | None:
    """Make (or find cached) the games of ``splits`` now; None for a domain whose games need
    no preparation."""
    domain = configured_domain(config, name)
    if not isinstance(domain, Preparing):
        return None
    with listening(on_progress):
        return {split: domain.prepare(split) for split in splits}


def domain_install_steps(name: str) -> tuple[list[list[str]], str]:
    """The pip arguments that install a domain's packages, in order, and a note on the domain
    (nothing to install: built in)."""
    spec = domain_spec(name)
    return [list(step) for step in spec.pip_steps()], spec.note or "built in"


def domain_installed(name: str) -> bool:
    return domain_spec(name).installed()


def models(config: AlmaConfig) -> list[dict[str, Any]]:
    """Every model and embedding spec, and whether it can be used here."""
    from alma.llm.catalogue import model_rows

    return model_rows(config.local.models_dir)


def install_model(
    config: AlmaConfig, name: str, *, on_progress: Listener | None = None
) -> tuple[Path, dict[str, Any]]:
    """Install an embedded model's weights (checked by sha256); their path and status."""
    from alma.llm.weights import install_weights, weights_status

    where = config.local.models_dir
    with listening(on_progress):
        path = install_weights(name, cache_dir=where)
    return path, weights_status(name, cache_dir=where)


def embedded_models(config: AlmaConfig, roles: Sequence[str]) -> list[str]:
    """One line per embedded model the ``roles`` (agent, memory, meta) will use: which model,
    for what, and whether its weights are installed or how much the first use downloads."""
    from alma.llm.factory import parse_model_spec
    from alma.llm.weights import catalogue, weights_status

    models = config.models
    specs = {"agent": models.agent, "memory": models.memory or models.agent, "meta": models.meta}
    users: dict[str, list[str]] = {}
    for role in roles:
        spec = specs.get(role) or models.agent
        if parse_model_spec(spec).provider == "local":
            users.setdefault(spec, []).append(role)
    lines = []
    for spec, used_by in users.items():
        name = parse_model_spec(spec).name
        named = ", ".join(used_by[:-1]) + " and " + used_by[-1] if len(used_by) > 1 else used_by[0]
        where = f"the {named} role" + ("s" if len(used_by) > 1 else "")
        if name not in catalogue():
            lines.append(f"embedded model {spec} for {where}, from {name}")
            continue
        status = weights_status(name, cache_dir=config.local.models_dir)
        ready = (
            "installed"
            if status["installed"]
            else f"first use downloads {status['size'] / 1e9:.1f} GB (`alma models install {name}`)"
        )
        lines.append(
            f"embedded model {spec} ({status['upstream'].split('/')[-1]}, on this machine's "
            f"CPU) for {where}; {ready}"
        )
    return lines

"""The options the commands share, and the one place that turns flags into settings."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from alma import api
from alma.cli.views import ProgressView
from alma.progress import Listener, listening
from alma.types import SPLITS, Split

# results go to stdout; when it is not a terminal, wide enough for tables, never wrapped
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


class State:
    config_path: Path | None = None
    debug: bool = False
    resume_hint: str | None = None  # how to go on after an interruption, once a run is open


state = State()

ConfigPath = Annotated[
    Path | None, typer.Option("--config", help="settings file (default: ./alma.toml if present)")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
AgentModel = Annotated[
    str | None, typer.Option("--agent-model", help="model spec of the acting agent")
]
MetaModel = Annotated[str | None, typer.Option("--meta-model", help="model spec of the meta agent")]
MemoryModel = Annotated[
    str | None, typer.Option("--memory-model", help="model spec for memory designs")
]
Embedder = Annotated[str | None, typer.Option("--embedder", help="embedding spec")]
BaseUrl = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint (or OPENAI_BASE_URL)")
]
BudgetUsd = Annotated[float | None, typer.Option("--budget-usd", help="stop after this spend")]
BudgetTokens = Annotated[
    int | None, typer.Option("--budget-tokens", help="stop after this many tokens")
]
NoCache = Annotated[bool, typer.Option("--no-cache", help="do not reuse cached model answers")]
Seed = Annotated[int | None, typer.Option("--seed", help="seed of the run")]
MaxSteps = Annotated[
    int | None,
    typer.Option("--max-steps", help="end episodes sooner than the domain's step limit"),
]
RunDir = Annotated[Path | None, typer.Option("--run-dir", help="run directory to write")]
InProcess = Annotated[
    bool,
    typer.Option("--in-process", help="run designs inside alma, unisolated (trusted code only)"),
]
Unsafe = Annotated[
    bool,
    typer.Option(
        "--unsafe-no-sandbox", help="run designs even where no isolation is available (risky)"
    ),
]
Rollout = Annotated[
    str | None, typer.Option("--rollout", help="batched (memory frozen) or sequential")
]
Quick = Annotated[bool, typer.Option("--quick", help="5 tasks: 2 build, 3 deploy")]
Tasks = Annotated[
    int | None, typer.Option("--tasks", "--train-size", help="tasks of the split to use")
]
SplitOption = Annotated[str, typer.Option("--split", help="train, eval_in_distribution, ...")]
DomainOption = Annotated[str, typer.Option("--domain", "-d", help="domain (see alma domains)")]
EpisodesConcurrency = Annotated[
    int | None, typer.Option("--max-episodes-concurrency", help="episodes played at once")
]
UpdateConcurrency = Annotated[
    int | None, typer.Option("--max-update-concurrency", help="1 = updates in task order")
]
RetrieveConcurrency = Annotated[
    int | None, typer.Option("--max-retrieve-concurrency", help="retrieves at once")
]


def check_split(split: str) -> Split:
    if split not in SPLITS:
        raise typer.BadParameter(
            f"{split!r} is not one of {', '.join(SPLITS)}", param_hint="--split"
        )
    return split


# the flags of a command that set what alma.toml sets: api.overrides' keywords, and the keys of
# its [eval] and [learn] sections (a flag's name: the setting's name)
TOP_FLAGS = (
    "agent_model",
    "meta_model",
    "memory_model",
    "embedder",
    "base_url",
    "budget_usd",
    "budget_tokens",
    "no_cache",
    "seed",
    "max_steps",
    "unsafe",
    "in_process",
)
EVAL_FLAGS = {
    "rollout": "rollout",
    "tasks": "tasks",
    "train_size": "tasks",
    "max_episodes_concurrency": "max_episodes_concurrency",
    "max_update_concurrency": "max_update_concurrency",
    "max_retrieve_concurrency": "max_retrieve_concurrency",
}
LEARN_FLAGS = {
    "iterations": "iterations",
    "selector": "selector",
    "parents": "parents_per_iteration",
    "temperature": "temperature",
    "seed_designs": "seed_designs",
    "max_repairs": "max_repairs",
}


def chosen(flags: dict[str, Any]) -> dict[str, Any]:
    """The settings a command's flags (its ``locals()``) choose, as :func:`alma.api.overrides`
    takes them."""
    return {
        **{name: flags[name] for name in TOP_FLAGS if name in flags},
        "eval": {key: flags[name] for name, key in EVAL_FLAGS.items() if name in flags},
        "learn": {key: flags[name] for name, key in LEARN_FLAGS.items() if name in flags},
    }


def settings(flags: dict[str, Any] | None = None) -> api.AlmaConfig:
    """The effective settings: defaults, then ``--config`` (or ./alma.toml), then the setting
    flags among ``flags`` (a command's ``locals()``)."""
    return api.configure(state.config_path, **chosen(flags or {}))


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


@contextmanager
def progress_shown(shown: bool) -> Iterator[Listener | None]:
    """A listener drawing progress on stderr, also set for the work done inside (None when
    ``shown`` is false: ``--json``)."""
    if not shown:
        yield None
        return
    view = ProgressView(err)
    try:
        with listening(view):
            yield view
    finally:
        view.close()


def say_models(config: api.AlmaConfig, roles: tuple[str, ...], shown: bool) -> None:
    """Before the work starts: which embedded models it will run (and any download)."""
    if shown:
        for line in api.embedded_models(config, roles):
            err.print(line, highlight=False, markup=False)

"""Every setting of alma, as pydantic models.

Where values come from, lowest priority first: the defaults below, an optional ``alma.toml``
(in the working folder, or ``--config PATH``), then command-line flags. Unknown keys and wrong
types are errors that name the key.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from alma.errors import ConfigError

CONFIG_FILE = "alma.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelsConfig(_Section):
    meta: str = Field("local", description="model spec of the meta agent")
    agent: str = Field("local", description="model spec of the acting agent")
    memory: str | None = Field(None, description="model spec of memory designs (default: agent)")
    embedder: str = Field("local", description="embedding spec: local, hash, openai:<model>")


class LLMConfig(_Section):
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint (else OPENAI_BASE_URL)"
    )
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    concurrency: int = Field(16, ge=1, description="in-flight requests per endpoint")
    structured: Literal["auto", "json_schema", "json_object"] = "auto"
    temperature: float = Field(0.0, ge=0, description="default sampling temperature")
    cache: bool = Field(True, description="reuse answers to identical deterministic calls")
    cache_path: Path | None = Field(None, description="response cache file (default: user cache)")


class LocalConfig(_Section):
    """The embedded llama.cpp server of the ``local`` model specs."""

    slots: int | None = Field(
        None, ge=1, description="requests decoded together (default: CPUs, max 4)"
    )
    threads: int | None = Field(None, ge=1, description="CPU threads (default: all)")
    context: int | None = Field(
        None, ge=1024, description="tokens per conversation (default: sized for the roles)"
    )
    max_context: int = Field(32768, ge=1024, description="upper bound of the sized context")
    timeout_s: float = Field(900.0, gt=0, description="limit of one request (CPUs are slow)")
    models_dir: Path | None = Field(
        None, description="where installed weights live (default: the user cache folder)"
    )


class BudgetConfig(_Section):
    usd: float | None = Field(None, ge=0, description="stop once this many dollars are spent")
    tokens: int | None = Field(None, ge=0, description="stop once this many tokens are used")


class Price(_Section):
    """Dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(0.0, ge=0)
    cached_input: float | None = Field(None, ge=0)


class AgentConfig(_Section):
    history_tokens: int = Field(
        6000, ge=256, description="budget for the step history in the prompt"
    )
    memory_chars: int = Field(6000, ge=0, description="cap on the rendered memory in the prompt")
    max_tokens: int = Field(512, ge=16, description="cap on one answer of the acting agent")
    match_cutoff: float = Field(0.6, ge=0, le=1, description="closest-action similarity cutoff")
    temperature: float = Field(
        0.7, ge=0, description="sampling temperature; each episode gets its own seed"
    )
    max_steps: int | None = Field(
        None, ge=1, description="cap below the domain's step limit (for quick trials)"
    )
    step_timeout_s: float = Field(
        60.0, gt=0, description="wall-clock limit of one environment call (open, reset, step)"
    )
    constrain_actions: bool | Literal["auto"] = Field(
        "auto",
        description="make the answer's action an enum of the admissible actions, when the game "
        "lists them (grammar-enforced on the embedded models); auto: on for local models only",
    )
    skip_no_ops: bool = Field(
        False,
        description="offer no action that already left the very same observation unchanged "
        "(breaks a small model's loops; the episode's game is not changed)",
    )
    think: bool = Field(
        True,
        description="the answer carries a short thought before its action; off: the action "
        "alone (several times fewer tokens to write, for small or slow models)",
    )


class EvalConfig(_Section):
    rollout: Literal["batched", "sequential"] = Field(
        "batched", description="batched: memory frozen after build; sequential: it keeps learning"
    )
    repeats: int = Field(3, ge=1, description="repeats of the deploy half")
    tasks: int | None = Field(None, ge=2, description="tasks of the split to use (default 20)")
    max_episodes_concurrency: int = Field(8, ge=1)
    max_update_concurrency: int = Field(1, ge=1, description="1 = updates in task order")
    max_retrieve_concurrency: int = Field(8, ge=1)
    retrieve_timeout_s: float = Field(120.0, gt=0, description="wall-clock limit of one retrieve")
    update_timeout_s: float = Field(300.0, gt=0, description="wall-clock limit of one update")


class LearnConfig(_Section):
    iterations: int = Field(3, ge=0, description="iterations of the search")
    parents_per_iteration: int = Field(5, ge=1, description="designs improved per iteration")
    selector: str = Field("alma", description="parent selection rule, by its registered name")
    temperature: float = Field(0.5, gt=0, description="softness of parent selection")
    seed_designs: Literal["none", "baselines"] = Field(
        "baselines", description="also evaluate the reference designs before the search"
    )
    seed_files: list[str] = Field(
        default_factory=list,
        description="your own design files, evaluated before the search and improved like any",
    )
    max_repairs: int = Field(3, ge=0, description="repair rounds for a design that fails checks")
    meta_token_budget: int = Field(32_000, ge=2000, description="prompt budget of a meta step")
    meta_max_tokens: int = Field(3000, ge=256, description="cap on one answer of the meta model")
    analysis_episodes: int = Field(8, ge=1, description="episodes shown to the analysis")
    split: Literal["train", "eval_in_distribution", "eval_out_of_distribution"] = "train"
    quick: bool = Field(False, description="evaluate designs on 5 tasks (2 build, 3 deploy)")
    held_out: Literal["none", "eval_in_distribution", "eval_out_of_distribution"] = Field(
        "eval_in_distribution",
        description="at the end, compare the best design with no_memory and the best reference "
        "design on this split's tasks (none: skip)",
    )

    @field_validator("selector")
    @classmethod
    def _registered_selector(cls, name: str) -> str:
        """One of the selectors in the ``alma.selectors`` entry-point group."""
        names = sorted({entry.name for entry in entry_points(group="alma.selectors")})
        key = name.strip().lower()
        if names and key not in names:
            raise PydanticCustomError(
                "unknown_selector",
                "Input should be a registered parent selector: {names}",
                {"names": ", ".join(names)},
            )
        return key


class SandboxConfig(_Section):
    mode: Literal["auto", "bwrap", "unshare", "none", "in_process"] = Field(
        "auto",
        description="isolation of design workers: auto = the strongest available; in_process "
        "runs designs inside alma (debugging trusted code only)",
    )
    memory_mb: int = Field(4096, ge=256, description="address-space limit of a worker")
    cpu_s: int = Field(900, ge=10, description="CPU seconds a worker may use in its life")
    processes: int = Field(32, ge=1, description="processes a worker may have")
    open_files: int = Field(256, ge=16)
    file_size_mb: int = Field(256, ge=1, description="largest file a worker may write")
    unsafe_no_sandbox: bool = Field(
        False, description="run generated/imported designs even with no isolation available"
    )


class MemoryConfig(_Section):
    vector_backend: Literal["numpy", "faiss"] = Field(
        "numpy",
        description="engine of the designs' vector stores: numpy, or faiss (same results, "
        "faster search; needs the faiss extra)",
    )


class ExecutorConfig(_Section):
    """Who plays the episodes: this process, or the nodes of a Ray cluster."""

    kind: Literal["local", "ray"] = Field(
        "local", description="local: episodes play in this process; ray: on a Ray cluster"
    )
    address: str | None = Field(
        None,
        description='Ray cluster to join: "auto", "ray://host:port" or "host:port" '
        "(none: start a Ray instance on this machine)",
    )
    job_cpus: float = Field(
        0.125, gt=0, description="CPUs one episode reserves on a node (it mostly waits on models)"
    )
    job_resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources one episode needs on its node, e.g. {textworld = 1}",
    )
    episodes_per_player: int = Field(
        8, ge=1, description="episodes one player process on a node plays at once"
    )
    max_job_retries: int = Field(
        2, ge=0, description="times an episode whose worker or node died is played again"
    )
    local_cpus: int | None = Field(
        None, ge=1, description="CPUs of the Ray instance started when no address is given"
    )

    @field_validator("address")
    @classmethod
    def _known_address(cls, address: str | None) -> str | None:
        """``auto``, ``ray://host:port`` or ``host:port``."""
        if address is None or address == "auto":
            return address
        _, _, port = address.removeprefix("ray://").rpartition(":")
        if not port.isdigit() or address.removeprefix("ray://").startswith(":"):
            raise PydanticCustomError(
                "ray_address", 'Input should be "auto", "ray://host:port" or "host:port"'
            )
        return address


class RunConfig(_Section):
    root: Path = Field(Path("runs"), description="folder holding run directories")
    seed: int = 0


class AlmaConfig(_Section):
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    local: LocalConfig = Field(default_factory=LocalConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    prices: dict[str, Price] = Field(default_factory=dict)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    learn: LearnConfig = Field(default_factory=LearnConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    # options passed to a domain when it is opened, e.g. [domains.alfworld] data_dir = "..."
    domains: dict[str, dict[str, Any]] = Field(default_factory=dict)


def _describe(error: ValidationError, source: str) -> ConfigError:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        message = f"{source}: unknown key {key!r}"
        hint = "check the spelling; `alma config show` lists every key"
    else:
        message = f"{source}: bad value for {key!r}: {first['msg']}"
        hint = "`alma config show` prints every key with its current value"
    return ConfigError(message, hint=hint)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", hint="check --config") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"{path} is not valid TOML: {error}", hint="fix the line named, or remove the file"
        ) from None
    except UnicodeDecodeError as error:  # a binary or non-UTF-8 file
        line = error.object[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path} is not valid TOML: not UTF-8 text (byte {error.object[error.start]:#04x} "
            f"on line {line})",
            hint="a settings file is UTF-8 text; fix or remove the file",
        ) from None
    except OSError as error:  # a folder, no permission, a failing disk
        raise ConfigError(
            f"cannot read config file {path}: {error.strerror or error}",
            hint="check the path and its permissions (--config, or ./alma.toml)",
        ) from None


def load_config(
    path: Path | None = None, overrides: dict[str, Any] | None = None, *, cwd: Path | None = None
) -> AlmaConfig:
    """Defaults, then the file (``path`` or ``./alma.toml`` if present), then ``overrides``.

    ``overrides`` is nested like the file (``{"budget": {"usd": 1.0}}``); ``None`` values are
    ignored so unset CLI flags never override the file.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is None:
        candidate = (cwd or Path.cwd()) / CONFIG_FILE
        path = candidate if candidate.is_file() else None
    if path is not None:
        data = read_toml(path)
        source = str(path)
        try:
            AlmaConfig.model_validate(data)
        except ValidationError as error:
            raise _describe(error, source) from None
    if overrides:
        data = _merge(data, _drop_none(overrides))
        source = "command line" if path is None else f"{source} + command line"
    try:
        return AlmaConfig.model_validate(data)
    except ValidationError as error:
        raise _describe(error, source) from None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            inner = _drop_none(value)
            if inner:
                cleaned[key] = inner
        elif value is not None:
            cleaned[key] = value
    return cleaned


def config_as_toml_dict(config: AlmaConfig) -> dict[str, Any]:
    """The config as plain TOML-able data (paths as strings, unset values left out)."""
    return config.model_dump(mode="json", exclude_none=True)

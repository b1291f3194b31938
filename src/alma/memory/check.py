"""Verifying a design against the memory contract: static checks, then a smoke run.

The static checks are advice for whoever fixes the code (a person, or the meta agent's repair
step): they can be fooled, and the sandbox is the boundary, not them. The smoke run is the real
test: the design is built by a ``RunnerFactory`` (the sandbox, as the harness runs it), given two
synthetic episodes, asked to retrieve, and copied, with a scripted model answering its model
calls. Which factory is the caller's choice, so this module knows nothing of the sandbox.
"""

from __future__ import annotations

import ast
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from alma.llm.embeddings import HashEmbedder
from alma.llm.scripted import ScriptedLLM
from alma.memory.loading import DesignSource, design_classes, normalise_source
from alma.memory.rendering import render_memory
from alma.memory.runner import CallResult, RunnerFactory
from alma.memory.toolkit import ModelServices
from alma.types import Episode, EpisodeStart, Outcome, Step

Severity = Literal["error", "warning"]

#: What a design may import besides the standard library (the meta agent is told the same).
ALLOWED_LIBRARIES = ("numpy", "networkx", "pydantic")
ALLOWED_ALMA = ("alma.memory", "alma.types")
DENIED_STDLIB = {
    "os",
    "subprocess",
    "socket",
    "ctypes",
    "multiprocessing",
    "threading",
    "signal",
    "shutil",
    "pty",
    "http",
    "urllib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "ssl",
    "select",
    "selectors",
    "importlib",
    "sys",
    "builtins",
    "gc",
    "inspect",
    "resource",
    "fcntl",
    "mmap",
    "pickle",
    "marshal",
    "code",
    "codeop",
    "webbrowser",
    "sqlite3",
    "tempfile",
    "glob",
    "pathlib",
    "io",
}
DENIED_CALLS = {"eval", "exec", "compile", "__import__", "open", "globals", "breakpoint", "input"}


@dataclass(frozen=True)
class Finding:
    """One problem the static checks saw (errors stop the check; warnings are advice)."""

    severity: Severity
    message: str
    line: int | None = None


@dataclass
class CheckReport:
    """What checking one design found: static findings, each smoke step's outcome, the verdict."""

    name: str
    findings: list[Finding] = field(default_factory=list)
    smoke: dict[str, Any] = field(default_factory=dict)  # step -> "ok" or the error
    passed: bool = False
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def summary(self) -> str:
        """One paragraph for a repair prompt: what failed, where."""
        lines = [f"{f.severity} (line {f.line}): {f.message}" for f in self.findings]
        lines += [
            f"smoke {step}: {result}" for step, result in self.smoke.items() if result != "ok"
        ]
        return "\n".join(lines) or "all checks passed"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = len(self.errors)
        return data


def static_check(source: str) -> list[Finding]:
    """What reading the source (without running it) finds against the memory contract."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [Finding("error", f"syntax error: {error.msg}", error.lineno)]
    findings: list[Finding] = []
    classes = design_classes(tree)
    if len(classes) != 1:
        findings.append(
            Finding("error", f"{len(classes)} MemoryDesign subclasses found; exactly one needed")
        )
    for cls in classes:
        methods = {
            n.name: n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        for name in ("retrieve", "update"):
            method = methods.get(name)
            if method is None:
                findings.append(Finding("error", f"{cls.name} has no {name} method", cls.lineno))
            elif not isinstance(method, ast.AsyncFunctionDef):
                findings.append(
                    Finding("error", f"{cls.name}.{name} must be async def", method.lineno)
                )
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for module in names:
                problem = _import_problem(module)
                if problem:
                    findings.append(Finding("warning", problem, node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in DENIED_CALLS:
                findings.append(
                    Finding(
                        "warning",
                        f"calls {node.func.id}(), which designs should not need",
                        node.lineno,
                    )
                )
        elif (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("__")
            and node.attr not in ("__init__", "__name__", "__class__", "__dict__")
        ):
            findings.append(Finding("warning", f"touches {node.attr}", node.lineno))
    return findings


def _import_problem(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "alma":
        if not module.startswith(ALLOWED_ALMA):
            return f"imports {module}: only alma.memory and alma.types are public to designs"
        return None
    if top in ALLOWED_LIBRARIES:
        return None
    if top in DENIED_STDLIB:
        return f"imports {module}, which a memory design should not need"
    if top not in sys.stdlib_module_names:
        return f"imports {module}: not in the allowed libraries (stdlib, numpy, networkx, pydantic)"
    return None


def synthetic_episodes() -> list[Episode]:
    """Two small episodes, one won and one lost, in a made-up text game."""
    won = EpisodeStart("smoke", "Find the brass key and take it.", "You are in the hall.")
    lost = EpisodeStart("smoke", "Find the silver coin and take it.", "You are in the cellar.")
    return [
        Episode(
            won,
            (
                Step("You are in the hall. Exits: north.", "explore", "go north", 0.0),
                Step(
                    "You are in the study. You see a brass key.", "take it", "take brass key", 1.0
                ),
            ),
            Outcome(True, 1.0, 2, "success"),
            final_observation="You take the brass key. You win!",
        ),
        Episode(
            lost,
            (Step("You are in the cellar. Exits: up.", "look around", "look", 0.0),),
            Outcome(False, 0.0, 1, "step_limit"),
            final_observation="You are in the cellar.",
        ),
    ]


async def smoke_run(
    design: DesignSource, factory: RunnerFactory, *, memory_chars: int = 6000
) -> dict[str, Any]:
    """Build, two updates, one retrieve (JSON, under the prompt cap), copy: step → outcome."""
    results: dict[str, Any] = {}
    services = ModelServices(ScriptedLLM(), HashEmbedder())
    try:
        runner = await factory.start(design, services, seed=0)
    except Exception as error:
        results["construct"] = str(error)  # an AlmaError's str is its message
        return results
    results["construct"] = "ok"
    factory.prewarm()  # the next check (or evaluation) finds a worker already up
    source = normalise_source(design.source)  # the text the worker runs: its line numbers

    def failure(call: CallResult) -> str:  # where in the design, for whoever repairs it
        return f"{call.error}{call.where(source)}"

    try:
        for index, episode in enumerate(synthetic_episodes(), 1):
            update = await runner.update(episode)
            results[f"update {index}"] = "ok" if update.error is None else failure(update)
        probe = EpisodeStart("smoke", "Find the brass key and take it.", "You are in the hall.")
        retrieved = await runner.retrieve(probe)
        if retrieved.error is not None:
            results["retrieve"] = failure(retrieved)
        else:
            size = len(json.dumps(retrieved.value))
            _, truncated = render_memory(retrieved.value, memory_chars)
            results["retrieve"] = (
                f"returns {size} characters, over the {memory_chars}-character prompt cap"
                if truncated
                else "ok"
            )
        try:
            await runner.reload()  # snapshot, load it back, and go on with the copy
            again = await runner.retrieve(probe)
            results["copy"] = "ok" if again.error is None else failure(again)
        except Exception as error:
            results["copy"] = str(error)
    finally:
        await runner.close()
    return results


async def check_design(
    design: DesignSource, factory: RunnerFactory, *, memory_chars: int = 6000
) -> CheckReport:
    """Static checks, then (when they find no error) the smoke run through ``factory``."""
    started = time.perf_counter()
    report = CheckReport(design.name, static_check(design.source))
    if not report.errors:
        report.smoke = await smoke_run(design, factory, memory_chars=memory_chars)
    report.passed = (
        not report.errors
        and bool(report.smoke)
        and all(result == "ok" for result in report.smoke.values())
    )
    report.seconds = time.perf_counter() - started
    return report

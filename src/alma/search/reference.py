"""The contract and toolkit reference the meta agent writes designs against, rendered from code.

``contract_reference()`` reads the signatures and docstrings of :class:`MemoryDesign`, the
toolkit, its stores and the episode types straight from the classes, and wraps them with the
rules of a valid design (``prompts/contract.txt``). Nothing is copied by hand, so the reference
cannot drift from what the sandbox actually runs.

The texts every meta step shows (the system message with the contract, the requirements of a
new design) are built once per process and domain and kept: a run's meta steps reuse them
rather than render them again per design.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from collections.abc import Callable, Iterator
from functools import cache, lru_cache
from importlib import resources
from string import Template
from typing import Any, get_args

import alma.memory.base as memory_base
import alma.memory.toolkit as toolkit_module
from alma.agent.actor import Actor
from alma.memory.base import MemoryDesign
from alma.memory.check import ALLOWED_ALMA, ALLOWED_LIBRARIES
from alma.memory.stores import Hit, KVStore, VectorStore
from alma.memory.toolkit import MemoryLLM, Toolkit
from alma.types import Episode, EpisodeStart, Outcome, OutcomeReason, Step, Usage

#: Modules a design may import besides the standard library.
ALLOWED_IMPORTS: tuple[str, ...] = (*ALLOWED_LIBRARIES, *ALLOWED_ALMA)

#: Toolkit members the harness uses; a design must not call them.
HARNESS_ONLY: frozenset[str] = frozenset({"services", "bind"})

#: Special methods worth showing, as the syntax a design writes (``len(store)``).
_SPECIAL = ("__call__", "__len__", "__contains__", "__iter__", "__getitem__")

#: What a rendered memory should stay under, as a fraction of the agent's cap.
COMPACT_FRACTION = 0.5


@cache
def prompt_template(name: str) -> Template:
    """``prompts/<name>.txt`` of this package as a ``string.Template``."""
    text = resources.files("alma.search").joinpath("prompts", f"{name}.txt").read_text("utf-8")
    return Template(text)


def memory_chars() -> int:
    """The acting agent's default cap on rendered memory, in characters."""
    for field in dataclasses.fields(Actor):
        if field.name == "memory_chars" and isinstance(field.default, int):
            return field.default
    return 6000  # pragma: no cover - only if the actor stops declaring the cap


def target_memory_chars() -> int:
    """What a design should aim for, leaving room for the rest of the agent's prompt."""
    return int(memory_chars() * COMPACT_FRACTION)


# --------------------------------------------------------------------------- rendering


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    if isinstance(value, str):
        return value
    return inspect.formatannotation(value)


def _signature(function: Callable[..., Any]) -> str:
    """``(self, k: int = 5) -> list[Hit]`` with string annotations shown unquoted."""
    signature = inspect.signature(function)
    parts: list[str] = []
    star_done = False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            star_done = True
            text = f"*{parameter.name}"
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            text = f"**{parameter.name}"
        else:
            text = parameter.name
        annotation = _annotation(parameter.annotation)
        if annotation:
            text += f": {annotation}"
        if parameter.default is not inspect.Parameter.empty:
            separator = " = " if annotation else "="
            text += f"{separator}{parameter.default!r}"
        parts.append(text)
    returns = _annotation(signature.return_annotation)
    return f"({', '.join(parts)})" + (f" -> {returns}" if returns else "")


def _docstring(obj: Any, indent: str) -> list[str]:
    """The object's own docstring (never one inherited from a base class), as stub lines."""
    own = getattr(obj, "__doc__", None)
    doc = inspect.cleandoc(own) if isinstance(own, str) else ""
    if not doc:
        return []
    body = textwrap.indent(doc, indent).splitlines()
    body[0] = f'{indent}"""{body[0].lstrip()}'
    if len(body) == 1:
        return [body[0] + '"""']
    return [*body, f'{indent}"""']


def _method_stub(name: str, function: Callable[..., Any], indent: str = "    ") -> list[str]:
    prefix = "async def" if inspect.iscoroutinefunction(function) else "def"
    lines = [f"{indent}{prefix} {name}{_signature(function)}:"]
    doc = _docstring(function, indent + "    ")
    return [*lines, *doc, f"{indent}    ..."] if doc else [lines[0] + " ..."]


def public_methods(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods, properties and useful special methods defined on ``cls``, in order."""
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in _SPECIAL:
            continue
        if isinstance(value, property | staticmethod | classmethod) or callable(value):
            yield name, value


def toolkit_attributes() -> dict[str, str]:
    """Public instance attributes of a toolkit and their types, read from a fresh instance."""
    kit = Toolkit()
    return {
        name: f"{type(value).__module__}.{type(value).__qualname__}".removeprefix(
            "alma.memory.toolkit."
        )
        for name, value in vars(kit).items()
        if not name.startswith("_")
    }


def class_stub(
    cls: type,
    *,
    include_init: bool = False,
    skip: frozenset[str] = frozenset(),
    attributes: dict[str, str] | None = None,
) -> str:
    """A Python stub of ``cls``: docstring, attributes, method signatures and docstrings."""
    bases = [base.__name__ for base in cls.__bases__ if base is not object]
    header = f"class {cls.__name__}({', '.join(bases)}):" if bases else f"class {cls.__name__}:"
    lines = [header, *_docstring(cls, "    ")]
    for name, kind in (attributes or {}).items():
        lines.append(f"    {name}: {kind}")
    if include_init and "__init__" in vars(cls):
        lines += _method_stub("__init__", vars(cls)["__init__"])
    for name, value in public_methods(cls):
        if name in skip:
            continue
        if isinstance(value, property):
            kind = (
                _annotation(inspect.signature(value.fget).return_annotation) if value.fget else ""
            )
            lines.append(f"    {name}: {kind or 'Any'}  # property")
            continue
        function = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        lines += _method_stub(name, function)
    return "\n".join(lines)


def dataclass_stub(cls: type) -> str:
    """The source of a dataclass (decorator, docstring, fields with their comments), no methods."""
    source = textwrap.dedent(inspect.getsource(cls)).splitlines()
    kept: list[str] = []
    for line in source:
        stripped = line.strip()
        body = line.startswith("    ")
        if body and stripped.startswith(("@", "def ", "async def ")):
            break
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def _literal(name: str, alias: Any) -> str:
    values = ", ".join(f'"{value}"' for value in get_args(alias))
    return f"{name} = Literal[{values}]"


def design_api() -> str:
    return class_stub(MemoryDesign, include_init=True)


def toolkit_api() -> str:
    toolkit = class_stub(Toolkit, skip=HARNESS_ONLY, attributes=toolkit_attributes())
    llm = class_stub(MemoryLLM)
    return f"{toolkit}\n\n\n{llm}"


def stores_api() -> str:
    return "\n\n\n".join((dataclass_stub(Hit), class_stub(VectorStore), class_stub(KVStore)))


def types_api() -> str:
    parts = [
        dataclass_stub(EpisodeStart),
        dataclass_stub(Step),
        _literal("OutcomeReason", OutcomeReason),
        dataclass_stub(Outcome),
        dataclass_stub(Usage),
        dataclass_stub(Episode),
    ]
    return "\n\n\n".join(parts)


@cache
def contract_reference() -> str:
    """The memory contract, toolkit API, allowed imports and rules, as Markdown for a prompt."""
    harness = ", ".join(f"`{name}`" for name in sorted(HARNESS_ONLY))
    return prompt_template("contract").substitute(
        design_doc=inspect.getdoc(memory_base) or "",
        design_api=design_api(),
        toolkit_doc=inspect.getdoc(toolkit_module) or "",
        toolkit_api=toolkit_api(),
        harness_only=harness,
        stores_api=stores_api(),
        types_api=types_api(),
        allowed_imports=", ".join(f"`{name}`" for name in ALLOWED_IMPORTS),
        memory_chars=memory_chars(),
        target_chars=target_memory_chars(),
        skeleton=skeleton_design().rstrip(),
    )


@cache
def skeleton_design() -> str:
    """A minimal valid design showing the contract's shape (``prompts/skeleton.txt``)."""
    return prompt_template("skeleton").template


@lru_cache(maxsize=8)
def system_text(domain_description: str) -> str:
    """The meta agent's system message for a domain: its role, the domain and the contract.

    The same text for every step of a run, so endpoints can reuse their prompt cache."""
    return prompt_template("system").substitute(
        domain=domain_description.strip(), contract=contract_reference().strip()
    )


@cache
def requirements_text() -> str:
    """What a new design must meet (``prompts/requirements.txt``), with the memory caps."""
    return (
        prompt_template("requirements")
        .substitute(memory_chars=memory_chars(), target_chars=target_memory_chars())
        .strip()
    )

"""What the meta agent answers: the schemas of its answers and how its text is read.

An analysis comes back as a validated :class:`Analysis` (structured output); a design comes
back as text, a ``name:`` line, an ``idea:`` line and the module in a fenced code block, which
:func:`parse_implementation` turns into an :class:`Implementation`. The text helpers here
(clipping, one-line summaries, snake-case names) are shared by the prompts that quote these
answers and by the episode sample.
"""

from __future__ import annotations

import ast
import contextlib
import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from alma.errors import MalformedOutputError

# --------------------------------------------------------------------------- schemas

Label = Literal["useful", "potentially useful", "irrelevant", "empty"]


class RetrievedPart(BaseModel):
    part: str = Field(description="a part of what retrieve returned: a key, or a kind of item")
    label: Label = Field(description="how the part served the agent")
    why: str = Field(description="the evidence, citing episode numbers")


class Change(BaseModel):
    priority: int = Field(description="1 for the most important change, then 2, 3, ...")
    what: str = Field(description="what to change in the code, specifically")
    why: str = Field(description="why, from the evidence")


class Analysis(BaseModel):
    """The meta agent's reading of a design's code and evaluation."""

    learned_from_memory: str = Field(
        description="what the agent took from memory and whether it helped"
    )
    retrieved_parts: list[RetrievedPart] = Field(
        description="each part of what retrieve returned, labelled"
    )
    content_problems: list[str] = Field(description="problems with what memory stores and returns")
    structure_problems: list[str] = Field(
        description="problems with how memory is organised, retrieved and updated"
    )
    changes: list[Change] = Field(description="prioritised changes, at most five")

    @field_validator("changes")
    @classmethod
    def _by_priority(cls, changes: list[Change]) -> list[Change]:
        return sorted(changes, key=lambda change: change.priority)


class Implementation(BaseModel):
    """A memory design as the meta agent wrote it.

    The steps that write code (implement, from scratch, repair) are answered as text, not JSON:
    a ``name:`` line, an ``idea:`` line, then the module in a fenced ``python`` block (see
    :func:`parse_implementation`). Code inside a JSON string is hard for small models to write
    (every newline and quote escaped) and costs tokens; a code block is what they write best.
    """

    name: str = Field(description="short snake_case name of the design")
    idea: str = Field(description="one line: what the design does or what is new in it")
    code: str = Field(description="the complete Python module, plain code without fences")

    @field_validator("name")
    @classmethod
    def _snake_case(cls, name: str) -> str:
        return snake_case(name)

    @field_validator("idea")
    @classmethod
    def _one_line(cls, idea: str) -> str:
        return one_line(idea)

    @field_validator("code")
    @classmethod
    def _plain_code(cls, code: str) -> str:
        return strip_fences(code)


_HEADER = re.compile(r"^[ \t*#>-]*(name|idea)[ \t*]*:[ \t*]*(.*)$", re.I | re.M)
_OPEN_FENCE = re.compile(r"^[ \t]*```[\w+-]*[ \t]*$", re.M)


def parse_implementation(text: str) -> Implementation:
    """The design in a text answer: ``name:`` and ``idea:`` lines, then a fenced code block.

    Tolerant of what models do: Markdown around the labels, prose before or after, a missing
    closing fence (an answer cut at the token cap keeps its code, which verification then
    judges), no fence at all when the whole answer is code. A missing name comes from the design
    class, a missing idea from its docstring's first line. Raises
    :class:`MalformedOutputError` only when there is no code at all.
    """
    fields: dict[str, str] = {}
    first_fence = _OPEN_FENCE.search(text)
    header = text[: first_fence.start()] if first_fence else ""
    for match in _HEADER.finditer(header):
        fields.setdefault(match.group(1).lower(), match.group(2).strip().strip("`*"))
    if first_fence is None:
        code = text if _parses(text.strip()) and "class " in text else ""
    else:
        blocks = _FENCE.findall(text[first_fence.start() :])
        # the module, not a JSON or shell snippet next to it
        classy = [block for block in blocks if "class " in block]
        code = max(classy or blocks, key=len) if blocks else text[first_fence.end() :]
    code = code.strip("\n").rstrip()
    if not code:
        raise MalformedOutputError(
            "the meta model's answer holds no code block",
            hint="the answer must end with the module in a ```python block",
        )
    class_name = design_class_name(code)
    name = fields.get("name") or (class_name or "design")
    idea = fields.get("idea") or _docstring_line(code) or "(no idea given)"
    return Implementation(name=name, idea=idea, code=code + "\n")


def render_implementation(implementation: Implementation) -> str:
    """The text form :func:`parse_implementation` reads."""
    return (
        f"name: {implementation.name}\nidea: {implementation.idea}\n\n"
        f"```python\n{implementation.code.rstrip()}\n```\n"
    )


def _docstring_line(code: str) -> str:
    with contextlib.suppress(SyntaxError, ValueError):
        tree = ast.parse(code)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                return one_line(ast.get_docstring(node) or "")
    return ""


# --------------------------------------------------------------------------- text cleaning

_FENCE = re.compile(r"^[ \t]*```[\w+-]*[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)
NAME_CHARS = 60
IDEA_CHARS = 240


def strip_fences(text: str) -> str:
    """Code without the Markdown fences (and surrounding prose) a model may wrap it in.

    Code that starts with a fence loses it (and the closing one); code that does not parse but
    contains fenced blocks becomes its longest block. Valid code is left alone, even when a
    string inside it contains backticks.
    """
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        body = stripped.rstrip()
        if body.endswith("```"):
            stripped = body[:-3]
        return stripped.strip("\n").rstrip() + "\n"
    if not _parses(stripped):
        blocks = _FENCE.findall(stripped)
        if blocks:
            return str(max(blocks, key=len)).strip("\n").rstrip() + "\n"
    return stripped + "\n" if stripped else ""


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def snake_case(name: str) -> str:
    """``KeyDoorMemory v2`` -> ``key_door_memory_v2``; never empty, starts with a letter."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name.strip())
    text = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not text:
        return "design"
    if not text[0].isalpha():
        text = f"design_{text}"
    return text[:NAME_CHARS].rstrip("_")


def one_line(text: str, limit: int = IDEA_CHARS) -> str:
    """The first non-empty line, whitespace collapsed, clipped to ``limit`` characters."""
    for line in text.splitlines():
        if line.strip():
            return clip(line, limit)
    return ""


def clip(text: str, limit: int) -> str:
    """Whitespace collapsed, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    if limit <= 0:
        return ""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def clip_middle(text: str, limit: int) -> str:
    """Keep the head and the tail of a long text (line breaks kept), noting what was cut."""
    if len(text) <= limit:
        return text
    marker = "\n... ({} characters omitted) ...\n"
    room = max(0, limit - len(marker) - 8)
    head = room * 2 // 5
    tail = room - head
    omitted = len(text) - head - tail
    return text[:head] + marker.format(omitted) + (text[-tail:] if tail else "")


def design_class_name(code: str) -> str | None:
    """The name of the first class in ``code`` that lists ``MemoryDesign`` among its bases."""
    match = re.search(r"^class\s+(\w+)\s*\([^)]*MemoryDesign[^)]*\)", code, re.M)
    return match.group(1) if match else None

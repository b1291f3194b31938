"""Designs in the original ALMA format: recognising them, importing them, exporting to them.

A design written for the original system is a module with a ``MemoStructure`` subclass (its
``general_retrieve`` / ``general_update`` read a recorder) that imports the original's interface
(``agents.memo_structure``, ``eval_envs.base_envs``, ``utils.hire_agent``). Importing one makes a
normal alma design: a short module that keeps the original source verbatim and subclasses
:class:`alma.memory.compat.OriginalDesign`, so the code runs, like every design, only in the
sandbox worker. Here the file is only parsed: what it imports that the compatibility layer does
not provide (and is not installed) is refused with one line naming it, before anything runs.

Export goes the other way for designs that came from the original format: the original source
comes back unchanged, so a design can go both ways.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from importlib import util
from pathlib import Path

from alma.memory.loading import DesignLoadError, DesignSource, normalise_source, read_source

FORMAT = "alma-original"

#: The original system's modules alma's compatibility layer provides, with the names it maps
#: (kept in step with ``alma.memory.compat.adapter.PROVIDED``, which this module does not import
#: so that reading a file never loads the layer).
PROVIDED: dict[str, tuple[str, ...]] = {
    "agents.memo_structure": ("MemoStructure", "Sub_memo_layer"),
    "eval_envs.base_envs": ("Basic_Recorder",),
    "utils.hire_agent": ("Agent", "Embedding"),
}
#: Top-level packages of the original's own code base: a module of theirs not in ``PROVIDED``
#: is part of the original's harness, which alma does not have.
ORIGINAL_PACKAGES = {"agents", "eval_envs", "utils", "memo_test", "logger", "envs_archive", "core"}

MAPPED_HINT = (
    "alma maps MemoStructure, Sub_memo_layer, Basic_Recorder, Agent and Embedding; port the rest "
    "onto alma's toolkit (alma.memory.Toolkit), or install the missing package"
)

WRAPPER = '''"""{class_name}: a memory design in the original ALMA format, imported unchanged.

The original source (sha256 {digest}) is kept verbatim in ORIGINAL_SOURCE and runs through
alma's compatibility layer (alma.memory.compat), in the design sandbox like any design.
"""

from typing import Any

from alma.memory import MemoryDesign
from alma.memory.compat import OriginalDesign, load_original
from alma.types import Episode, EpisodeStart

FORMAT = "{format}"
ORIGINAL_SOURCE = {literal}

ORIGINAL = load_original(ORIGINAL_SOURCE)


class {class_name}(OriginalDesign, MemoryDesign):
    """The original's {class_name}, on alma's toolkit."""

    original_class = ORIGINAL.{class_name}

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        """``general_retrieve`` on a recorder holding the episode's start."""
        return await super().retrieve(start)

    async def update(self, episode: Episode) -> None:
        """``general_update`` on a recorder holding the whole episode."""
        await super().update(episode)
'''


class ExportError(DesignLoadError):
    """A design that cannot be written in the original format."""


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def structure_classes(tree: ast.Module) -> list[ast.ClassDef]:
    """Module-level classes that subclass the original's ``MemoStructure``."""
    return [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(_base_name(base) == "MemoStructure" for base in node.bases)
    ]


def _parse(source: str, name: str) -> ast.Module | None:
    try:
        return ast.parse(normalise_source(source), filename=name)
    except SyntaxError:
        return None


def is_alma_format(source: str) -> bool:
    """Whether the source is a design in the original ALMA format (read, never run)."""
    tree = _parse(source, "<design>")
    return tree is not None and bool(structure_classes(tree))


def _installed(module: str) -> bool:
    root = module.split(".")[0]
    if root in sys.stdlib_module_names:
        return True
    try:
        return util.find_spec(root) is not None
    except (ImportError, ValueError):
        return False


def missing_pieces(tree: ast.Module) -> list[str]:
    """What the code imports that neither the compatibility layer nor this Python provides."""
    missing: list[str] = []

    def note(piece: str) -> None:
        if piece not in missing:
            missing.append(piece)

    for node in ast.walk(tree):
        modules: list[tuple[str, tuple[str, ...]]]
        if isinstance(node, ast.Import):
            modules = [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                note("." * node.level + (node.module or ""))
                continue
            modules = [(node.module or "", tuple(alias.name for alias in node.names))]
        else:
            continue
        for module, names in modules:
            if module in PROVIDED:
                for name in names:
                    if name not in PROVIDED[module]:
                        note(f"{module}.{name}")
            elif module.split(".")[0] in ORIGINAL_PACKAGES or not _installed(module):
                note(module)
    return missing


def source_digest(source: str) -> str:
    return hashlib.sha256(normalise_source(source).encode()).hexdigest()


def _literal(text: str) -> str:
    """``text`` as a readable triple-quoted Python literal that evaluates back to it exactly."""
    escaped = text.replace("\\", "\\\\").replace("'''", "\\'\\'\\'")
    return "'''\\\n" + escaped + "'''"


def wrap(source: str, name: str) -> DesignSource:
    """The alma design that runs an original-format source; refused (one line naming what is
    missing) when the source does not parse, defines no single ``MemoStructure`` subclass, or
    imports what alma cannot provide."""
    original = normalise_source(source)
    tree = _parse(original, name)
    if tree is None:
        try:
            ast.parse(original, filename=name)
        except SyntaxError as error:
            raise DesignLoadError(
                f"design {name!r} has a syntax error on line {error.lineno}: {error.msg}",
                hint="fix the code; `python -m py_compile FILE` names the problem",
            ) from None
    assert tree is not None
    classes = structure_classes(tree)
    if len(classes) != 1:
        what = "no" if not classes else str(len(classes))
        raise DesignLoadError(
            f"design {name!r} defines {what} MemoStructure subclasses (exactly one needed)",
            hint="an ALMA-format design defines one class that subclasses MemoStructure",
        )
    missing = missing_pieces(tree)
    if missing:
        raise DesignLoadError(
            f"design {name!r} (ALMA format) needs what alma does not provide: "
            + ", ".join(missing),
            hint=MAPPED_HINT,
        )
    text = WRAPPER.format(
        class_name=classes[0].name,
        digest=source_digest(original),
        format=FORMAT,
        literal=_literal(original),
    )
    return DesignSource(name, text, "imported")


def import_design(path: Path, name: str | None = None) -> DesignSource:
    """An ALMA-format design file as an alma design (``origin`` ``imported``), named ``name``
    or after the file. Raises :class:`DesignLoadError` (one line and a hint) for a file that
    cannot be read, is not in the ALMA format, or needs what alma cannot provide."""
    source = read_source(path)
    design_name = name or path.stem
    if not is_alma_format(source):
        raise DesignLoadError(
            f"{path} is not an ALMA-format design (no class subclasses MemoStructure)",
            hint="an alma design (a MemoryDesign subclass) needs no import: pass it to "
            "--design as it is",
        )
    return wrap(source, design_name)


def original_source(design: DesignSource) -> str | None:
    """The original source an imported ALMA-format design carries; None for other designs."""
    tree = _parse(design.source, design.name)
    if tree is None:
        return None
    values: dict[str, object] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
        ):
            values[node.targets[0].id] = node.value.value
    text = values.get("ORIGINAL_SOURCE")
    if values.get("FORMAT") != FORMAT or not isinstance(text, str):
        return None
    return text


def export_design(design: DesignSource) -> str:
    """The design as a file of the original ALMA format.

    A design imported from that format comes back as its original source, byte for byte (after
    line-ending normalisation). A design written for alma's toolkit does not map: its stores,
    types and contract have no counterpart in the original's interface, so it is refused with
    one line saying so.
    """
    original = original_source(design)
    if original is not None:
        return original
    raise ExportError(
        f"design {design.name!r} was written for alma's toolkit, not imported from the ALMA "
        "format: the original's interface has no counterpart to alma's MemoryDesign contract "
        "(EpisodeStart/Episode) and toolkit stores",
        hint="only designs imported from the ALMA format (alma import) can be exported to it",
    )

"""Memory designs as source code: ids, loading from a name, a file or a string.

A design is identified by the first 12 hex digits of the sha256 of its normalised source, so the
same code always has the same id wherever it came from. Loading executes the source as a module
registered under ``alma_design_<id>`` (so instances pickle by reference) and picks the one
``MemoryDesign`` subclass it defines.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import types
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from alma.errors import UsageError
from alma.memory.base import MemoryDesign

Origin = Literal["reference", "generated", "imported"]


ARCHIVE_HEADER = "# alma memory design"


def normalise_source(source: str) -> str:
    """Line endings and trailing spaces normalised; the comment header the archive puts on its
    readable copies (``# alma memory design ...``) left out, so a copy keeps its design's id."""
    lines = [line.rstrip() for line in source.replace("\r\n", "\n").split("\n")]
    if lines and lines[0].startswith(ARCHIVE_HEADER):
        while lines and lines[0].startswith("#"):
            lines.pop(0)
    return "\n".join(lines).strip("\n") + "\n"


def design_id(source: str) -> str:
    return hashlib.sha256(normalise_source(source).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DesignSource:
    """A memory design's code and where it came from."""

    name: str
    source: str
    origin: Origin = "imported"

    @property
    def id(self) -> str:
        return design_id(self.source)

    @property
    def module_name(self) -> str:
        return f"alma_design_{self.id}"


class DesignLoadError(UsageError):
    """The code does not define a usable memory design."""


def load_class(design: DesignSource) -> type[MemoryDesign]:
    """Execute the design's source (once per id) and return its MemoryDesign subclass."""
    module = sys.modules.get(design.module_name)
    if module is None:
        module = types.ModuleType(design.module_name)
        module.__file__ = f"<design {design.name}>"
        try:
            code = compile(normalise_source(design.source), module.__file__, "exec")
            sys.modules[design.module_name] = module
            exec(code, module.__dict__)
        except Exception as error:
            sys.modules.pop(design.module_name, None)
            raise DesignLoadError(
                f"design {design.name!r} failed to load: {type(error).__name__}: {error}",
                hint="fix the code; `python -c 'import ast; ast.parse(open(FILE).read())'` "
                "finds syntax errors",
            ) from None
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, MemoryDesign)
        and value is not MemoryDesign
        and value.__module__ == design.module_name
    ]
    if len(found) != 1:
        sys.modules.pop(design.module_name, None)
        what = "no" if not found else f"{len(found)}"
        raise DesignLoadError(
            f"design {design.name!r} defines {what} MemoryDesign subclasses (exactly one needed)",
            hint="define one class that subclasses alma.memory.MemoryDesign",
        )
    return found[0]


def read_design(path: Path) -> DesignSource:
    """A design file's source, named after the file, not yet loaded."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DesignLoadError(
            f"cannot read design file {path}: {error.strerror}", hint="check the path"
        ) from None
    return DesignSource(path.stem, source, "imported")


def design_from_file(path: Path) -> DesignSource:
    design = read_design(path)
    load_class(design)  # fail early, with the reason
    return design


def reference_names() -> list[str]:
    from alma.memory.baselines import BASELINES

    plugins = [entry.name for entry in metadata.entry_points(group="alma.memories")]
    return sorted({*BASELINES, *plugins})


def reference_design(name: str) -> DesignSource:
    """A reference design (or a plugin's, from the ``alma.memories`` entry points) as source."""
    from alma.memory.baselines import BASELINES

    target = BASELINES.get(name)
    origin: Origin = "reference"
    if target is None:
        plugins = {
            entry.name: entry.value for entry in metadata.entry_points(group="alma.memories")
        }
        target, origin = plugins.get(name), "imported"
    if target is None:
        raise UsageError(
            f"unknown memory design {name!r}",
            hint=f"known designs: {', '.join(reference_names())}; or pass --design FILE.py",
        )
    module = importlib.import_module(target.partition(":")[0])
    assert module.__file__ is not None
    return DesignSource(name, Path(module.__file__).read_text(encoding="utf-8"), origin)


def resolve_design(spec: str) -> DesignSource:
    """A design named by a reference name, or a path to a ``.py`` file."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise DesignLoadError(f"design file {spec} does not exist", hint="check the path")
        return design_from_file(path)
    return reference_design(spec)

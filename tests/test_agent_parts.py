import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alma.agent.actor import Actor
from alma.agent.conversation import History
from alma.agent.matching import match_action
from alma.config import AlmaConfig
from alma.llm.scripted import scripted_from_spec
from alma.memory.rendering import render_memory
from alma.types import Episode, EpisodeStart, Message, Outcome, Step, Task, Usage, to_dict
from stuck_domain import StuckDomain


def test_match_exact_normalised_closest_and_invalid() -> None:
    admissible = ["go north", "take blue key", "open red door"]
    assert match_action("go north", admissible) == ("go north", True)
    assert match_action("  Take the Blue-Key! ", admissible)[1] is True
    assert match_action("Take blue key.", admissible) == ("take blue key", True)
    assert match_action("open the red door", admissible) == ("open red door", True)
    assert match_action("dance wildly", admissible) == ("dance wildly", False)
    assert match_action(" anything ", None) == ("anything", True)


def test_render_memory_caps_and_flags() -> None:
    assert render_memory({}, 100) == ("", False)
    text, truncated = render_memory({"tips": "use keys", "cases": [1, 2]}, 1000)
    assert "[tips]\nuse keys" in text and not truncated
    text, truncated = render_memory({"big": "x" * 5000}, 200)
    assert truncated and len(text) <= 200 and text.endswith("(memory truncated)")


def test_history_stays_within_budget_and_keeps_the_task() -> None:
    history = History(budget=400, first="Task: find the coin\nobservation zero")
    for index in range(60):
        history.add(f'{{"action": "go {index}"}}', f"go {index}", f"observation {index} " * 8)
        assert history.tokens() <= 400
    messages = history.messages("system")
    assert messages[1].content.startswith("Task: find the coin")
    assert "earlier steps are omitted" in messages[1].content
    omitted = len(history.omitted)
    assert f"({omitted} earlier steps" in messages[1].content
    assert f"go {omitted - 1})" in messages[1].content and "..., go" in messages[1].content
    roles = [m.role for m in messages[1:]]
    assert roles == ["user"] + ["assistant", "user"] * (len(roles) // 2)


def test_history_trims_in_chunks() -> None:
    history = History(budget=1000, first="Task")
    trims = 0
    previous = 0
    for index in range(200):
        history.add("answer", f"a{index}", "observation " * 10)
        if len(history.omitted) != previous:
            trims += 1
            previous = len(history.omitted)
    assert trims < 200 / 5  # the prefix changes rarely, not every step


def test_history_sends_exactly_its_kept_turns_after_trims() -> None:
    history = History(budget=300, first="Task")
    for index in range(80):
        history.add(f"answer {index}", f"a{index}", f"observation {index} " * 6)
        expected = [Message("system", "s"), Message("user", "Task" + history.note)]
        for answer, _, observation in history.turns:
            expected += [Message("assistant", answer), Message("user", observation)]
        expected[-1] = Message("user", expected[-1].content + " newest")
        assert history.messages("s", " newest") == expected


def test_to_dict_is_what_asdict_gives() -> None:
    step = Step("You are here.", "think", "go north", 0.5, "go nrth", valid=False)
    task = Task("t1", "train", "find", 3, {"rooms": [1, (2, 3)], "nested": {"k": None}})
    episode = Episode(
        EpisodeStart("toy", "find", "You are here."),
        (step,) * 4,
        Outcome(True, 1.0, 4, "success"),
        "won",
        Usage(10, 2, 1),
        memory={"hints": [{"text": "x", "score": 0.5}]},
    )
    for value in (step, task, episode):
        plain = to_dict(value)
        assert plain == dataclasses.asdict(value)
        assert json.dumps(plain) == json.dumps(dataclasses.asdict(value))
    assert type(to_dict(episode)["steps"]) is tuple
    with pytest.raises(TypeError):
        to_dict({"not": "a dataclass"})


@pytest.fixture
def stuck() -> Iterator[StuckDomain]:
    domain = StuckDomain()
    yield domain
    domain.release.set()  # lets the hung game's thread end


def play(domain: StuckDomain, timeout_s: float) -> tuple[float, object]:
    actor = Actor(scripted_from_spec(None), domain, step_timeout_s=timeout_s)
    started = time.perf_counter()
    episode = asyncio.run(actor.run(domain.tasks("train")[0]))
    return time.perf_counter() - started, episode


def test_the_step_limit_of_environment_calls_is_configurable() -> None:
    assert AlmaConfig().agent.step_timeout_s == 60.0
    settings = AlmaConfig.model_validate({"agent": {"step_timeout_s": 2.5}}).agent
    actor = Actor.configured(scripted_from_spec(None), StuckDomain(), settings, "scripted")
    assert actor.step_timeout_s == 2.5


@pytest.mark.parametrize("at", [1, 3])
def test_a_stuck_step_ends_its_episode_with_an_error(stuck: StuckDomain, at: int) -> None:
    stuck.at = at
    seconds, episode = play(stuck, 0.2)
    assert seconds < 2
    outcome = episode.outcome  # type: ignore[attr-defined]
    assert outcome.reason == "error" and not outcome.success
    assert outcome.error == "environment step took longer than 0.2 s"
    assert outcome.steps == at - 1  # the steps before the stuck one are kept
    # the game ran on a daemon thread, never on the event loop's; it was not closed under the
    # hung step: the close waits its turn on that thread
    (thread,) = stuck.used
    assert thread.daemon and thread is not threading.main_thread()
    assert stuck.closed == []
    stuck.release.set()
    for _ in range(100):
        if stuck.closed:
            break
        time.sleep(0.01)
    assert stuck.closed == [thread]


@pytest.mark.parametrize("where", ["open", "reset"])
def test_a_game_stuck_before_its_first_step_ends_the_episode(
    stuck: StuckDomain, where: str
) -> None:
    stuck.where = where
    seconds, episode = play(stuck, 0.2)
    assert seconds < 2
    outcome = episode.outcome  # type: ignore[attr-defined]
    assert (outcome.reason, outcome.steps, outcome.success) == ("error", 0, False)
    assert outcome.error == f"environment {where} took longer than 0.2 s"


def test_a_game_that_does_not_hang_is_closed_on_its_thread(stuck: StuckDomain) -> None:
    stuck.where = "nowhere"
    _, episode = play(stuck, 5.0)
    assert episode.outcome.reason in ("success", "step_limit")  # type: ignore[attr-defined]
    (thread,) = stuck.used
    assert stuck.closed == [thread] and thread.daemon


INTERRUPTED_RUN = """
import sys
from stuck_domain import register
register()
from alma.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_a_stuck_step_stops_a_run_within_seconds(tmp_path: Path) -> None:
    marker = tmp_path / "hung"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parent),
        "STUCK_MARKER": str(marker),
        "STUCK_WHERE": "step",
    }
    command = [sys.executable, "-c", INTERRUPTED_RUN, "eval", "--domain", "stuck", "--quick"]
    command += ["--memory", "no_memory", "--run-dir", str(tmp_path / "run")]
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), process.communicate(timeout=5)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=10)
        assert time.monotonic() - interrupted < 5
        assert code == 130, process.communicate()[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_only_environments_that_declare_it_are_stepped_inline() -> None:
    """alma's own in-memory engines skip the thread hop; any other game keeps its thread and
    its time limit."""
    import functools

    from alma.agent.actor import Stepper
    from alma.domains.babaisai.domain import BabaIsAIDomain
    from alma.domains.registry import open_env
    from alma.domains.toy import ToyDomain

    async def inline(domain: object) -> bool:
        stepper = Stepper(5.0)
        task = domain.tasks("train")[0]  # type: ignore[attr-defined]
        await stepper.open(functools.partial(open_env, domain, task, 5))
        try:
            await stepper.reset()
            return stepper.inline
        finally:
            await stepper.close()

    assert asyncio.run(inline(ToyDomain()))
    assert asyncio.run(inline(BabaIsAIDomain()))
    assert not asyncio.run(inline(StuckDomain()))

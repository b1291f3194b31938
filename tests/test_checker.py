"""The domain checker: passes the toy domain, names what is wrong with broken ones."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import pytest

from alma.domains.checker import check_domain
from alma.domains.toy import ToyDomain
from alma.errors import DomainCheckError
from alma.types import Observation, Split, Task, Transition

ACTIONS = ("wait", "finish")


class CountEnv:
    """A well-behaved game: ``finish`` wins, ``wait`` counts."""

    def __init__(self) -> None:
        self.count = 0
        self.closed = False

    def observe(self) -> Observation:
        return Observation(f"Count {self.count}.", ACTIONS)

    def reset(self) -> Observation:
        self.count = 0
        return self.observe()

    def step(self, action: str) -> Transition:
        self.count += 1
        won = action == "finish"
        return Transition(self.observe(), float(won), won, won, {})

    def close(self) -> None:
        self.closed = True


class FakeDomain:
    name = "fake"
    step_limit = 5
    description = "Count, then finish."
    instructions = "Say wait or finish."

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.envs: list[Any] = []

    def tasks(self, split: Split) -> Sequence[Any]:
        return [Task(f"{split}-{i}", split, "Finish.") for i in range(self.count)]

    def make_env(self, task: Task) -> Any:
        env = self.env()
        self.envs.append(env)
        return env

    def env(self) -> Any:
        return CountEnv()


def problems(domain: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(DomainCheckError) as caught:
        check_domain(domain, **kwargs)
    assert caught.value.problems
    assert caught.value.message.startswith(
        f"domain {getattr(domain, 'name', None)!r} fails {len(caught.value.problems)} check(s): "
    ) or caught.value.message.startswith(f"domain {type(domain).__name__!r} fails")
    return caught.value.problems


# --------------------------------------------------------------------------- passing domains


def test_toy_domain_passes() -> None:
    assert check_domain(ToyDomain()) == []


def test_toy_domain_passes_on_every_task() -> None:
    assert check_domain(ToyDomain(tasks_per_split=20), tasks_per_split=20, seed=3) == []


def test_fake_domain_passes_and_every_env_is_closed() -> None:
    domain = FakeDomain(count=4)
    assert check_domain(domain, tasks_per_split=2) == []
    assert len(domain.envs) == 3 * 2 * 3  # two fresh envs and a step-limit env per task
    assert all(env.closed for env in domain.envs)


def test_empty_split_is_a_warning() -> None:
    class Empty(FakeDomain):
        def tasks(self, split: Split) -> Sequence[Any]:
            return [] if split == "eval_out_of_distribution" else super().tasks(split)

    assert check_domain(Empty()) == ["split 'eval_out_of_distribution' has no tasks"]
    assert check_domain(ToyDomain(tasks_per_split=0)) == [
        f"split {s!r} has no tasks"
        for s in ("train", "eval_in_distribution", "eval_out_of_distribution")
    ]


def test_tasks_per_split_bounds_the_work() -> None:
    domain = FakeDomain()
    check_domain(domain, tasks_per_split=0)
    assert domain.envs == []


# --------------------------------------------------------------------------- attributes


def test_wrong_attribute_types_are_all_listed() -> None:
    class Bad(FakeDomain):
        name = 3  # type: ignore[assignment]
        step_limit = "5"  # type: ignore[assignment]
        description = "  "
        instructions = None  # type: ignore[assignment]

    assert problems(Bad()) == [
        "name must be a str, not int",
        "step_limit must be an int, not str",
        "description is empty",
        "instructions must be a str, not NoneType",
    ]


def test_missing_attributes_and_methods() -> None:
    class Bare:
        name = "bare"

        @property
        def description(self) -> str:
            raise ValueError("not written yet")

    assert problems(Bare()) == [
        "missing attribute 'step_limit'",
        "reading 'description' raised ValueError: not written yet",
        "missing attribute 'instructions'",
        "missing method tasks()",
        "missing method make_env()",
    ]


def test_non_positive_step_limit() -> None:
    class Zero(FakeDomain):
        step_limit = 0

    assert problems(Zero()) == ["step_limit must be positive, not 0"]


# --------------------------------------------------------------------------- splits


def test_overlapping_splits() -> None:
    class Overlap(FakeDomain):
        def tasks(self, split: Split) -> Sequence[Any]:
            first = 2 if split == "eval_out_of_distribution" else 0
            return [Task(f"task-{i}", split, "Finish.") for i in range(first, first + 4)]

    assert problems(Overlap()) == [
        "splits 'train' and 'eval_in_distribution' share 4 task id(s): "
        "'task-0', 'task-1', 'task-2', 'task-3'",
        "splits 'train' and 'eval_out_of_distribution' share 2 task id(s): 'task-2', 'task-3'",
        "splits 'eval_in_distribution' and 'eval_out_of_distribution' share 2 task id(s): "
        "'task-2', 'task-3'",
    ]


def test_wrong_split_field_duplicate_ids_and_non_tasks() -> None:
    class Messy(FakeDomain):
        def tasks(self, split: Split) -> Sequence[Any]:
            if split == "train":
                return [Task("a", "eval_in_distribution", "x"), Task("a", "train", "x")]
            if split == "eval_in_distribution":
                return ["b", Task("", split, "x"), Task("c", split, "")]
            return (Task(f"d{i}", split, "x") for i in range(2))  # type: ignore[return-value]

    assert problems(Messy()) == [
        "task 'a' from tasks('train') has split 'eval_in_distribution'",
        "tasks('train') repeats task ids: 'a'",
        "tasks('eval_in_distribution')[0] must be a Task, not str",
        "tasks('eval_in_distribution')[1] has an empty or non-str id: ''",
        "task 'c' has an empty or non-str description",
        "tasks('eval_out_of_distribution') must return a sequence, not generator",
    ]


def test_many_shared_ids_are_shortened() -> None:
    class Same(FakeDomain):
        def tasks(self, split: Split) -> Sequence[Any]:
            return [Task(f"t{i}", split, "x") for i in range(8)]

    first = problems(Same(), tasks_per_split=0)[0]
    assert first == "splits 'train' and 'eval_in_distribution' share 8 task id(s): " + (
        "'t0', 't1', 't2', 't3', 't4', ..."
    )


# --------------------------------------------------------------------------- determinism


def test_non_deterministic_reset() -> None:
    counter = itertools.count()

    class Drifting(CountEnv):
        def reset(self) -> Observation:
            return Observation(f"Day {next(counter)}.", ACTIONS)

    class Shuffled(CountEnv):
        def reset(self) -> Observation:
            return Observation("Count 0.", ACTIONS[:: 1 if next(counter) % 2 else -1])

    class DriftingDomain(FakeDomain):
        def env(self) -> Any:
            return Drifting()

    class ShuffledDomain(FakeDomain):
        def env(self) -> Any:
            return Shuffled()

    found = problems(DriftingDomain(), tasks_per_split=1)
    assert found[0] == (
        "task 'train-0': reset() on two fresh envs is not deterministic: "
        "the observation text differs"
    )
    assert len(found) == 6  # fresh envs and reset after step(), for each split
    assert problems(ShuffledDomain(), tasks_per_split=1)[0].endswith(
        "reset() on two fresh envs is not deterministic: the admissible actions differ"
    )


def test_reset_that_does_not_restart() -> None:
    class Sticky(CountEnv):
        def reset(self) -> Observation:
            return self.observe()

    class StickyDomain(FakeDomain):
        def env(self) -> Any:
            return Sticky()

    found = problems(StickyDomain(), tasks_per_split=1, seed=0)
    assert found[0].endswith(
        "reset() after step() is not deterministic: the observation text differs"
    )


# --------------------------------------------------------------------------- types


def domain_with(env_class: type[CountEnv]) -> FakeDomain:
    class Domain(FakeDomain):
        def env(self) -> Any:
            return env_class()

    return Domain()


def test_wrong_observation_types() -> None:
    class BytesText(CountEnv):
        def observe(self) -> Observation:
            return Observation(b"Count", ACTIONS)  # type: ignore[arg-type]

    class IntActions(CountEnv):
        def observe(self) -> Observation:
            return Observation("Count.", ("wait", 3))  # type: ignore[arg-type]

    class NoActions(CountEnv):
        def observe(self) -> Observation:
            return Observation("Count.", ())

    class ListActions(CountEnv):
        def observe(self) -> Observation:
            return Observation("Count.", ["finish"], [])  # type: ignore[arg-type]

    class PlainString(CountEnv):
        def reset(self) -> Any:
            return "Count."

    kw: dict[str, Any] = {"tasks_per_split": 1}
    assert problems(domain_with(BytesText), **kw)[0] == (
        "task 'train-0': reset(): observation text must be a non-empty str, got b'Count'"
    )
    assert problems(domain_with(IntActions), **kw)[0] == (
        "task 'train-0': reset(): observation actions must be None or a tuple of str, "
        "got ('wait', 3)"
    )
    assert problems(domain_with(NoActions), **kw)[0] == (
        "task 'train-0': reset() gives no admissible actions; use None when they are unknown"
    )
    assert problems(domain_with(ListActions), **kw)[0] == (
        "task 'train-0': reset(): observation info must be a dict, not list"
    )
    assert problems(domain_with(PlainString), **kw)[0] == (
        "task 'train-0': reset() must return an Observation, not str"
    )


def test_list_of_actions_is_a_warning() -> None:
    class ListActions(CountEnv):
        def observe(self) -> Observation:
            return Observation("Count.", ["finish"])  # type: ignore[arg-type]

    warnings = check_domain(domain_with(ListActions), tasks_per_split=1)
    assert warnings[0] == (
        "task 'train-0': reset(): observation actions is a list; a tuple is expected"
    )


def test_wrong_transition_types() -> None:
    class DictStep(CountEnv):
        def step(self, action: str) -> Any:
            return {"observation": "Count."}

    class SloppyStep(CountEnv):
        def step(self, action: str) -> Transition:
            return Transition(self.observe(), "1", 0, None, None)  # type: ignore[arg-type]

    class NanReward(CountEnv):
        def step(self, action: str) -> Transition:
            return Transition(self.observe(), float("nan"))

    class BadStepObservation(CountEnv):
        def step(self, action: str) -> Transition:
            return Transition(Observation(""), 0.0)

    kw: dict[str, Any] = {"tasks_per_split": 1, "seed": 1}
    dict_problems = problems(domain_with(DictStep), **kw)
    assert dict_problems[0] == "task 'train-0': step('wait') must return a Transition, not dict"
    assert problems(domain_with(SloppyStep), **kw)[:4] == [
        "task 'train-0': step('wait'): reward must be a finite number, got '1'",
        "task 'train-0': step('wait'): done must be a bool, not int",
        "task 'train-0': step('wait'): success must be a bool, not NoneType",
        "task 'train-0': step('wait'): info must be a dict, not NoneType",
    ]
    assert problems(domain_with(NanReward), **kw)[0] == (
        "task 'train-0': step('wait'): reward must be a finite number, got nan"
    )
    assert problems(domain_with(BadStepObservation), **kw)[0] == (
        "task 'train-0': step('wait'): observation text must be a non-empty str, got ''"
    )


def test_success_without_done_is_a_warning() -> None:
    class Eager(CountEnv):
        def step(self, action: str) -> Transition:
            self.count += 1
            return Transition(self.observe(), 0.0, False, True)

    warnings = check_domain(domain_with(Eager), tasks_per_split=1)
    assert warnings[0] == "task 'train-0': step('finish'): success=True while done=False"


def test_envs_without_admissible_actions_are_driven_with_look() -> None:
    seen: list[str] = []

    class Free(CountEnv):
        def observe(self) -> Observation:
            return Observation("Count.")

        def step(self, action: str) -> Transition:
            seen.append(action)
            return super().step(action)

    assert check_domain(domain_with(Free), tasks_per_split=1) == []
    assert set(seen) == {"look"}
    assert len(seen) == 3 * (3 + 5)  # three checked steps and a full step-limit run per split


# --------------------------------------------------------------------------- crashes


def test_exceptions_become_problems() -> None:
    class Crashing(FakeDomain):
        def tasks(self, split: Split) -> Sequence[Any]:
            if split == "eval_out_of_distribution":
                raise KeyError("ood")
            return super().tasks(split)

        def make_env(self, task: Task) -> Any:
            if task.split == "eval_in_distribution":
                raise OSError("no game file")
            return super().make_env(task)

    class ResetCrash(CountEnv):
        def reset(self) -> Observation:
            raise RuntimeError("boom")

        def close(self) -> None:
            raise RuntimeError("already closed")

    class CrashingReset(Crashing):
        def env(self) -> Any:
            return ResetCrash()

    assert problems(CrashingReset(), tasks_per_split=1) == [
        "tasks('eval_out_of_distribution') raised KeyError: 'ood'",
        "task 'train-0': reset() raised RuntimeError: boom",
        "task 'train-0': close() raised RuntimeError: already closed",
        "task 'train-0': close() raised RuntimeError: already closed",
        "task 'eval_in_distribution-0': make_env() raised OSError: no game file",
    ]


def test_step_that_crashes_late_is_caught_in_the_step_limit_run() -> None:
    class Fragile(CountEnv):
        def step(self, action: str) -> Transition:
            if self.count == 3:
                raise IndexError("ran off the map")
            self.count += 1
            return Transition(self.observe())

    found = problems(domain_with(Fragile))
    assert len(found) == 3  # the first three steps pass; the step-limit run dies at step 4
    assert all(
        re.fullmatch(
            r"task '[a-z_]+-0': step\('\w+'\) at step 4 raised IndexError: ran off the map", p
        )
        for p in found
    ), found


def test_attribute_that_raises_does_not_stop_the_check() -> None:
    class Flaky(FakeDomain):
        @property
        def step_limit(self) -> int:  # type: ignore[override]
            raise RuntimeError("limit unknown")

    assert problems(Flaky()) == ["reading 'step_limit' raised RuntimeError: limit unknown"]

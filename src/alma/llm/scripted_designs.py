"""The memory designs the scripted meta model writes, valid and broken.

Three real, working designs (keyword-overlap episodes, embedded success plans, a window of
recent lessons), each with a variant parameter; a broken copy of each (a syntax error, no
``MemoryDesign`` subclass, a ``retrieve`` that returns a set) that repair turns back into the
valid one; and one design no repair can save. :func:`choose_design` picks one for a prompt, as a
pure function of the prompt and the call's seed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# --------------------------------------------------------------------------- valid designs

KEYWORD_EPISODES = '''\
"""Keyword episodes: past episodes found again by the words their tasks share with a new one."""

from __future__ import annotations

import re
from typing import Any

from alma.memory import MemoryDesign, Toolkit
from alma.types import Episode, EpisodeStart

TOP_K = __VARIANT__
STORE = "episodes"
WORD = re.compile(r"[a-z]+")
STOP_WORDS = frozenset(
    "the and you are there this that with for from into your here its has have".split()
)


def keywords(text: str) -> list[str]:
    return sorted({w for w in WORD.findall(text.lower()) if len(w) > 2 and w not in STOP_WORDS})


class KeywordEpisodes(MemoryDesign):
    """Past episodes ranked by keyword overlap with the new task.

    Each finished episode is kept in a key-value store (at most ``capacity``, oldest dropped) with
    the keywords of its task and first observation, its outcome and its actions. Retrieve ranks
    the stored episodes by the Jaccard overlap of their keywords with the new episode's,
    successes first among equals, and returns the best ``k``:
    ``{"similar_episodes": [{"task", "outcome", "overlap", "actions"}]}``.
    """

    def __init__(
        self, toolkit: Toolkit, k: int = TOP_K, capacity: int = 200, max_actions: int = 25
    ) -> None:
        super().__init__(toolkit)
        self.k = k
        self.capacity = capacity
        self.max_actions = max_actions

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        records = self.toolkit.kv(STORE).get("records", [])
        if not records or self.k <= 0:
            return {}
        query = set(keywords(f"{start.task_description} {start.observation}"))
        scored = []
        for index, record in enumerate(records):
            words = set(record["keywords"])
            union = len(query | words)
            overlap = len(query & words) / union if union else 0.0
            if overlap > 0:
                scored.append((-overlap, not record["success"], -index, record))
        scored.sort(key=lambda entry: entry[:3])
        chosen = [
            {
                "task": record["task"],
                "outcome": "success" if record["success"] else "failure",
                "overlap": round(-negative, 2),
                "actions": record["actions"][: self.max_actions],
            }
            for negative, _, _, record in scored[: self.k]
        ]
        return {"similar_episodes": chosen} if chosen else {}

    async def update(self, episode: Episode) -> None:
        if not episode.steps:
            return
        start = episode.start
        record = {
            "task": start.task_description[:300],
            "keywords": keywords(f"{start.task_description} {start.observation}"),
            "success": bool(episode.outcome.success),
            "actions": [step.action for step in episode.steps][: self.max_actions],
        }
        store = self.toolkit.kv(STORE)
        store.set("records", [*store.get("records", []), record][-self.capacity :])
'''

SUCCESS_PLANS = '''\
"""Success plans: the action lists of similar solved tasks, and actions that never worked."""

from __future__ import annotations

from typing import Any

from alma.memory import MemoryDesign, Toolkit
from alma.types import Episode, EpisodeStart

TOP_K = __VARIANT__
PLANS = "plans"
STATS = "stats"
MAX_AVOID = 8


def key_text(start: EpisodeStart) -> str:
    return f"{start.task_description}\\n{start.observation}"


class SuccessPlans(MemoryDesign):
    """Plans that worked on similar tasks, plus actions the game refused.

    A solved episode is embedded once (task and first observation) and stored with its actions
    in a vector store of at most ``max_plans`` plans (oldest dropped). Every episode counts the
    actions that matched no admissible action. Retrieve returns the ``k`` nearest plans and the
    most often refused actions:
    ``{"successful_plans": [{"task", "similarity", "actions"}], "avoid": [...]}``.
    """

    def __init__(
        self, toolkit: Toolkit, k: int = TOP_K, max_plans: int = 100, max_actions: int = 30
    ) -> None:
        super().__init__(toolkit)
        self.k = k
        self.max_plans = max_plans
        self.max_actions = max_actions

    def _avoid(self) -> list[str]:
        counts: dict[str, int] = self.toolkit.kv(STATS).get("refused", {})
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [action for action, _ in ranked[:MAX_AVOID]]

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        memory: dict[str, Any] = {}
        store = self.toolkit.vectors(PLANS)
        if len(store) and self.k > 0:
            query = await self.toolkit.embed(key_text(start))
            memory["successful_plans"] = [
                {
                    "task": hit.item["task"],
                    "similarity": round(float(hit.score), 2),
                    "actions": hit.item["actions"][: self.max_actions],
                }
                for hit in store.search(query, k=self.k)
            ]
        avoid = self._avoid()
        if avoid:
            memory["avoid"] = avoid
        return memory

    async def update(self, episode: Episode) -> None:
        vector = None
        if episode.outcome.success and episode.steps:
            vector = await self.toolkit.embed(key_text(episode.start))
        stats = self.toolkit.kv(STATS)
        counts: dict[str, int] = stats.get("refused", {})
        for step in episode.steps:
            if not step.valid:
                counts[step.action] = counts.get(step.action, 0) + 1
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:50]
        stats.set("refused", dict(ranked))
        if vector is None:
            return
        store = self.toolkit.vectors(PLANS)
        store.add(
            vector,
            {
                "task": episode.start.task_description[:300],
                "actions": [step.action for step in episode.steps][: self.max_actions],
            },
        )
        while len(store) > self.max_plans:
            oldest = next(iter(store.items()))[0]
            store.delete(oldest)
'''

RECENT_LESSONS = '''\
"""Recent lessons: one lesson per episode from the memory model; the latest few are shown."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel

from alma.memory import MemoryDesign, Toolkit
from alma.types import Episode, EpisodeStart

WINDOW = __VARIANT__
STORE = "lessons"

PROMPT = """An agent {outcome} the task below in {steps} steps.
Task: {task}
Actions: {actions}
Final observation: {final}
Write one short, general lesson for similar tasks (no one-off names)."""


class Lesson(BaseModel):
    lesson: str


def plain_lesson(episode: Episode) -> str:
    """A lesson that needs no model: what worked, or where the agent got stuck."""
    actions = [step.action for step in episode.steps]
    task = episode.start.task_description[:120]
    if episode.outcome.success:
        return f"Solved '{task}' in {len(actions)} steps: " + ", ".join(actions[:10])
    if not actions:
        return f"Failed '{task}' before acting."
    action, count = Counter(actions).most_common(1)[0]
    return f"Failed '{task}' after {len(actions)} steps; '{action}' was repeated {count} times."


class RecentLessons(MemoryDesign):
    """A sliding window of lessons, newest last.

    After each episode the memory model writes one lesson from the task, the actions and the
    outcome; when its answer is unusable (an error, empty or too long) a rule-based lesson takes
    its place. The last ``window`` distinct lessons are kept in a key-value store. Retrieve
    returns them all: ``{"lessons": [...]}``.
    """

    def __init__(self, toolkit: Toolkit, window: int = WINDOW, max_chars: int = 300) -> None:
        super().__init__(toolkit)
        self.window = window
        self.max_chars = max_chars

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        lessons = self.toolkit.kv(STORE).get("latest", [])
        return {"lessons": lessons} if lessons else {}

    async def update(self, episode: Episode) -> None:
        actions = [step.action for step in episode.steps]
        prompt = PROMPT.format(
            outcome="solved" if episode.outcome.success else "failed",
            steps=len(actions),
            task=episode.start.task_description[:300],
            actions=", ".join(actions[:30]) or "(none)",
            final=episode.final_observation[:300],
        )
        try:
            answer = await self.toolkit.llm(prompt, schema=Lesson)
            text = " ".join(answer.lesson.split()) if isinstance(answer, Lesson) else ""
        except Exception:
            text = ""
        if not text or len(text) > self.max_chars:
            text = plain_lesson(episode)[: self.max_chars]
        store = self.toolkit.kv(STORE)
        lessons = [lesson for lesson in store.get("latest", []) if lesson != text]
        store.set("latest", [*lessons, text][-self.window :])
'''


@dataclass(frozen=True)
class ScriptedDesign:
    """A design the scripted meta model can write; ``__VARIANT__`` marks its variant number."""

    name: str
    idea: str
    template: str
    valid: bool = True
    fixed_by: str = ""  # for an invalid design: the valid design it was broken from

    def source(self, variant: int) -> str:
        return self.template.replace("__VARIANT__", str(variant))


VALID_DESIGNS: dict[str, ScriptedDesign] = {
    design.name: design
    for design in (
        ScriptedDesign(
            "keyword_episodes",
            "past episodes ranked by keyword overlap with the new task, successes first",
            KEYWORD_EPISODES,
        ),
        ScriptedDesign(
            "success_plans",
            "action lists of the most similar solved tasks, plus actions the game refused",
            SUCCESS_PLANS,
        ),
        ScriptedDesign(
            "recent_lessons",
            "a window of the latest lessons written by the memory model after each episode",
            RECENT_LESSONS,
        ),
    )
}

# --------------------------------------------------------------------------- invalid designs


def _broken(template: str, old: str, new: str) -> str:
    if old not in template:  # pragma: no cover - guards the designs above against edits
        raise ValueError(f"cannot break the design: {old!r} is not in it")
    return template.replace(old, new, 1)


INVALID_DESIGNS: dict[str, ScriptedDesign] = {
    design.name: design
    for design in (
        # fails to compile: a missing colon
        ScriptedDesign(
            "keyword_episodes_syntax_error",
            "past episodes ranked by keyword overlap (with a syntax error)",
            _broken(
                KEYWORD_EPISODES,
                "async def update(self, episode: Episode) -> None:",
                "async def update(self, episode: Episode) -> None",
            ),
            valid=False,
            fixed_by="keyword_episodes",
        ),
        # loads, but retrieve returns a set: not JSON-serialisable
        ScriptedDesign(
            "recent_lessons_set_output",
            "a window of lessons (whose retrieve returns a set)",
            _broken(
                RECENT_LESSONS,
                'return {"lessons": lessons} if lessons else {}',
                'return {"lessons": lessons, "seen": set(range(len(lessons)))}',
            ),
            valid=False,
            fixed_by="recent_lessons",
        ),
        # defines no MemoryDesign subclass
        ScriptedDesign(
            "success_plans_no_subclass",
            "similar solved plans (in a class that is not a MemoryDesign)",
            _broken(SUCCESS_PLANS, "class SuccessPlans(MemoryDesign):", "class SuccessPlans:"),
            valid=False,
            fixed_by="success_plans",
        ),
    )
}

# a design no repair can save: it needs a service the sandbox never offers (every repair of it
# returns it again), so the loop must archive it as failed
EXTERNAL_INDEX = """\
from typing import Any

from alma.memory import MemoryDesign
from alma.types import Episode, EpisodeStart


class ExternalIndex(MemoryDesign):
    \"\"\"Keeps episodes in a search server on localhost (which the sandbox never reaches).\"\"\"

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        import socket

        with socket.create_connection(("127.0.0.1", 9200), timeout=1):
            return {}

    async def update(self, episode: Episode) -> None:
        import socket

        with socket.create_connection(("127.0.0.1", 9200), timeout=1):
            return None
"""
UNFIXABLE = ScriptedDesign(
    "external_index",
    "episodes in an external search server (unreachable from the sandbox)",
    EXTERNAL_INDEX,
    valid=False,
)

VARIANTS = 4  # variant numbers 1..VARIANTS
VARIANT_LINE = re.compile(r"^(?:TOP_K|WINDOW) = (\d+)$", re.M)
CLASS_TO_DESIGN = {
    "class KeywordEpisodes": "keyword_episodes",
    "class SuccessPlans": "success_plans",
    "class RecentLessons": "recent_lessons",
}


def design_source(name: str, variant: int = 1) -> str:
    """The source of a scripted design (valid or invalid) by name."""
    design = VALID_DESIGNS.get(name) or INVALID_DESIGNS[name]
    return design.source(variant)


def choose_design(prompt: str, seed: int | None = None) -> tuple[ScriptedDesign, int]:
    """The design (about one in three invalid, one in eleven beyond repair) and variant the
    scripted model writes for ``prompt`` (and the call's seed): a pure function of both."""
    number = prompt_number(prompt if seed is None else f"{seed}\n{prompt}")
    if number % 11 == 5:
        return UNFIXABLE, 1
    valid, invalid = list(VALID_DESIGNS.values()), list(INVALID_DESIGNS.values())
    pick = number // 3
    design = invalid[pick % len(invalid)] if number % 3 == 0 else valid[pick % len(valid)]
    return design, 1 + (number // 9) % VARIANTS


def prompt_number(text: str) -> int:
    """A stable number for ``text``: what the scripted meta model's choices hash."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")

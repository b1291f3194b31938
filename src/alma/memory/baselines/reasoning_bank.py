"""ReasoningBank: strategies and lessons distilled from self-judged successes and failures."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from alma.memory import MemoryDesign, Toolkit
from alma.types import Episode, EpisodeStart

STORE = "memory_items"
MAX_ITEMS = 3
OBSERVATION_CHARS = 200
TITLE_CHARS = 120
DESCRIPTION_CHARS = 300
CONTENT_CHARS = 1000

JUDGE_PROMPT = """\
Judge whether the agent below completed its task. Use only the trajectory: the task, the
actions and what the environment answered (the last line is the final observation).

{trajectory}

Think briefly, then give the verdict: "success" or "failure"."""

SUCCESS_PROMPT = """\
The agent below completed its task. Distil at most {count} memory items: reusable strategies
that made it succeed and would help on similar tasks. For each: a short title, a one-sentence
description of when it applies, and the content: concrete, general advice (no one-off names).

{trajectory}"""

FAILURE_PROMPT = """\
The agent below failed its task. Distil at most {count} memory items: what went wrong, the
pitfalls to avoid and what to do instead on similar tasks. For each: a short title, a
one-sentence description of when it applies, and the content: concrete, general advice.

{trajectory}"""


class Verdict(BaseModel):
    reasoning: str
    verdict: Literal["success", "failure"]


class MemoryItem(BaseModel):
    title: str = ""
    description: str = ""
    content: str = ""


class Distilled(BaseModel):
    items: list[MemoryItem]


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def trajectory_text(episode: Episode, max_steps: int = 40) -> str:
    """Task, start and one line per step; long episodes keep their beginning and their end."""
    start = episode.start
    lines = [f"Task: {start.task_description}", f"Start: {clip(start.observation, 400)}"]
    results = [step.observation for step in episode.steps[1:]] + [episode.final_observation]
    numbered = list(enumerate(zip(episode.steps, results, strict=True), 1))
    if len(numbered) > max_steps:
        head, tail = numbered[: max_steps // 2], numbered[-(max_steps - max_steps // 2) :]
        omitted = len(numbered) - len(head) - len(tail)
    else:
        head, tail, omitted = numbered, [], 0
    for number, (step, result) in head:
        lines.append(f"{number}. {step.action} -> {clip(result, OBSERVATION_CHARS)}")
    if omitted:
        lines.append(f"... ({omitted} steps omitted)")
    for number, (step, result) in tail:
        lines.append(f"{number}. {step.action} -> {clip(result, OBSERVATION_CHARS)}")
    if not episode.steps:
        lines.append("(the agent took no action)")
    return "\n".join(lines)


def cleaned(item: MemoryItem) -> dict[str, str] | None:
    """The item trimmed to its length caps, or None when it says nothing usable."""
    title, content = clip(item.title, TITLE_CHARS), clip(item.content, CONTENT_CHARS)
    if not title or not content:
        return None
    return {
        "title": title,
        "description": clip(item.description, DESCRIPTION_CHARS),
        "content": content,
    }


class ReasoningBank(MemoryDesign):
    """Memory items (title, description, content) distilled from judged experience.

    After Ouyang, Yan, Hsu, Chen, Jiang, Wang, Han, Le, Daruki, Tang, Tirumalashetty, Lee,
    Rofouei, Lin, Han, Lee and Pfister, 2025, "ReasoningBank: Scaling Agent Self-Evolving with
    Reasoning Memory", arXiv:2509.25140.

    After each episode the memory model (1) judges from the trajectory alone whether the task
    was completed (LLM-as-a-judge; the environment's own flag is used only when the judge gives
    no valid answer), then (2) distils up to three memory items: strategies that worked from a
    success, lessons and pitfalls from a failure. Each valid item is embedded once, together with
    the task it came from, and stored; items that are empty or malformed are skipped. Before an
    episode, the task and first observation are embedded once and the ``k`` most similar items
    are returned (``k=1`` by default, as in the paper).

    Simplified: no memory-aware test-time scaling (MaTTS), no parallel or sequential
    self-contrast; items are only added, never consolidated, as in the paper's base method.

    Returns ``{"memory_items": [{"title", "description", "content"}]}``.
    """

    def __init__(self, toolkit: Toolkit, k: int = 1, max_items: int = MAX_ITEMS) -> None:
        super().__init__(toolkit)
        self.k = k
        self.max_items = max_items

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        store = self.toolkit.vectors(STORE)
        if len(store) == 0 or self.k <= 0:
            return {}
        query = await self.toolkit.embed(f"{start.task_description}\n{start.observation}")
        hits = store.search(query, k=self.k)
        items = [
            {key: hit.item[key] for key in ("title", "description", "content")} for hit in hits
        ]
        return {"memory_items": items}

    async def update(self, episode: Episode) -> None:
        trajectory = trajectory_text(episode)
        success = await self._judge(trajectory, fallback=episode.outcome.success)
        prompt = (SUCCESS_PROMPT if success else FAILURE_PROMPT).format(
            count=self.max_items, trajectory=trajectory
        )
        try:
            distilled = await self.toolkit.llm(prompt, schema=Distilled)
        except Exception:
            return  # no usable answer: learn nothing from this episode rather than fail it
        if not isinstance(distilled, Distilled):
            return
        items = [item for item in map(cleaned, distilled.items) if item is not None]
        items = items[: self.max_items]
        if not items:
            return
        task = episode.start.task_description
        texts = [f"{task}\n{item['title']}: {item['description']}" for item in items]
        vectors = await self.toolkit.embed(texts)
        store = self.toolkit.vectors(STORE)
        for vector, item in zip(vectors, items, strict=True):
            store.add(vector, {**item, "task": task, "from_success": success})

    async def _judge(self, trajectory: str, *, fallback: bool) -> bool:
        try:
            verdict = await self.toolkit.llm(
                JUDGE_PROMPT.format(trajectory=trajectory), schema=Verdict
            )
        except Exception:
            return fallback
        return verdict.verdict == "success" if isinstance(verdict, Verdict) else fallback

"""Similar lessons: one model-written lesson per episode, found again by embedding similarity.

After each episode the memory model is asked, with a pydantic schema, for a short lesson and the
actions that mattered. The lesson is embedded together with the task and kept in a vector store
with its outcome; when the model fails or answers nonsense, a plain record written without the
model is kept instead. Before an episode, the task and first observation are embedded and the
closest lessons are returned, won episodes first. The store is bounded: past ``capacity``
lessons, the oldest is deleted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from alma.memory import MemoryDesign, Toolkit
from alma.types import Episode, EpisodeStart

PROMPT = """An agent {outcome} this task: {task}
It started with: {observation}
Its actions, in order: {actions}
It ended with: {final}
Write one short lesson for similar tasks, and list the actions that mattered most."""


class Lesson(BaseModel):
    lesson: str = Field(description="one or two sentences, general enough to reuse")
    key_actions: list[str] = Field(default_factory=list, description="at most five actions")


class SimilarLessons(MemoryDesign):
    """Lessons in a vector store keyed by task; ``retrieve`` returns the ``k`` closest."""

    def __init__(
        self, toolkit: Toolkit, k: int = 3, capacity: int = 200, max_chars: int = 300
    ) -> None:
        super().__init__(toolkit)
        self.k = k
        self.capacity = capacity
        self.max_chars = max_chars
        self.order: list[int] = []  # store ids, oldest first (plain data: it pickles)

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        store = self.toolkit.vectors("lessons")
        if len(store) == 0:
            return {}
        query = await self.toolkit.embed(f"{start.task_description}\n{start.observation}")
        hits = store.search(query, k=self.k, where={"domain": start.domain})
        hits.sort(key=lambda hit: (not hit.item["success"], -hit.score))
        return {
            "lessons_from_similar_tasks": [
                {
                    "task": hit.item["task"],
                    "outcome": "solved" if hit.item["success"] else "failed",
                    "lesson": hit.item["lesson"],
                    "key_actions": hit.item["key_actions"],
                    "similarity": round(hit.score, 2),
                }
                for hit in hits
            ]
        }

    async def update(self, episode: Episode) -> None:
        actions = [step.action for step in episode.steps]
        outcome = "solved" if episode.outcome.success else "failed"
        prompt = PROMPT.format(
            outcome=outcome,
            task=episode.start.task_description,
            observation=episode.start.observation[:500],
            actions=", ".join(actions[-40:]) or "(none)",
            final=episode.final_observation[:300] or "(nothing)",
        )
        try:
            answer = await self.toolkit.llm(prompt, schema=Lesson, max_tokens=200)
            lesson = answer.lesson.strip() if isinstance(answer, Lesson) else ""
            key_actions = [a for a in answer.key_actions if a in actions][:5] if lesson else []
        except Exception:  # the model failed or answered off-schema: keep a plain record
            lesson, key_actions = "", []
        lesson = lesson or f"{outcome} in {len(actions)} steps"
        key_actions = key_actions or actions[-5:]  # none the agent took: its last five instead
        text = f"{episode.start.task_description}\n{lesson}"
        vector = await self.toolkit.embed(text)
        # every await is done: now change the state, so a failure above loses nothing stored
        store = self.toolkit.vectors("lessons")
        item = {
            "domain": episode.start.domain,
            "task": episode.start.task_description[:200],
            "success": episode.outcome.success,
            "lesson": lesson[: self.max_chars],
            "key_actions": key_actions,
        }
        self.order.append(store.add(vector, item))
        while len(self.order) > self.capacity:
            store.delete(self.order.pop(0))

"""Trajectory retrieval: whole past trajectories of similar tasks, shown as examples."""

from __future__ import annotations

from typing import Any

from alma.memory import MemoryDesign, Toolkit
from alma.types import Episode, EpisodeStart

STORE = "trajectories"
OBSERVATION_CHARS = 160


def key_text(start: EpisodeStart) -> str:
    """What a trajectory is filed under, and what a new episode is looked up by."""
    return f"{start.task_description}\n{start.observation}"


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def steps_text(episode: Episode, limit: int) -> str:
    """One line per step: the action and what the environment answered."""
    lines = []
    results = [step.observation for step in episode.steps[1:]] + [episode.final_observation]
    for number, (step, result) in enumerate(zip(episode.steps, results, strict=True), 1):
        if number > limit:
            lines.append(f"... ({len(episode.steps) - limit} more steps)")
            break
        lines.append(f"{number}. {step.action} -> {clip(result, OBSERVATION_CHARS)}")
    return "\n".join(lines)


class TrajectoryRetrieval(MemoryDesign):
    """Retrieve the trajectories of the most similar past tasks, successes first.

    The experience-replay memory that ALMA ("Automated meta-Learning of Memory designs for
    Agentic systems") uses as its "Trajectory Retrieval" baseline, in the line of Synapse
    (Zheng, Wang, Wang and An, 2024, "Synapse: Trajectory-as-Exemplar Prompting with Memory for
    Computer Control", arXiv:2306.07863).

    Each finished episode is stored whole (task, actions, outcome, a compact step-by-step text)
    under one embedding of its task description and first observation, computed once when it is
    stored. A new episode embeds its own start once and gets the ``k`` nearest trajectories:
    successes first, then failures to fill up; identical trajectories are shown once.

    Simplified: no state abstraction or exemplar rewriting (Synapse's), no LLM calls; only the
    first ``max_steps_shown`` actions of a trajectory are shown; observations only when
    ``include_observations`` is set (they cost prompt space).

    Returns ``{"similar_episodes": [{"task", "outcome", "steps", "actions"[, "trajectory"]}]}``.
    """

    def __init__(
        self,
        toolkit: Toolkit,
        k: int = 3,
        max_steps_shown: int = 30,
        include_observations: bool = False,
    ) -> None:
        super().__init__(toolkit)
        self.k = k
        self.max_steps_shown = max_steps_shown
        self.include_observations = include_observations

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        store = self.toolkit.vectors(STORE)
        if len(store) == 0 or self.k <= 0:
            return {}
        query = await self.toolkit.embed(key_text(start))
        chosen: list[dict[str, Any]] = []
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for success in (True, False):
            for hit in store.search(query, k=2 * self.k, where={"success": success}):
                signature = (hit.item["task"], tuple(hit.item["actions"]))
                if signature in seen:
                    continue
                seen.add(signature)
                chosen.append(hit.item)
                if len(chosen) == self.k:
                    break
            if len(chosen) == self.k:
                break
        return {"similar_episodes": [self._shown(item) for item in chosen]}

    async def update(self, episode: Episode) -> None:
        if not episode.steps:
            return  # nothing happened (e.g. the episode failed to start): nothing to replay
        vector = await self.toolkit.embed(key_text(episode.start))
        self.toolkit.vectors(STORE).add(
            vector,
            {
                "task": episode.start.task_description,
                "success": bool(episode.outcome.success),
                "actions": [step.action for step in episode.steps],
                "trajectory": steps_text(episode, self.max_steps_shown),
            },
        )

    def _shown(self, item: dict[str, Any]) -> dict[str, Any]:
        actions: list[str] = item["actions"]
        shown: dict[str, Any] = {
            "task": item["task"],
            "outcome": "success" if item["success"] else "failure",
            "steps": len(actions),
            "actions": actions[: self.max_steps_shown],
        }
        if self.include_observations:
            shown["trajectory"] = item["trajectory"]
        return shown

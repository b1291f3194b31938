"""Dynamic Cheatsheet: one self-curated sheet of strategies, kept across episodes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from alma.memory import MemoryDesign, Toolkit
from alma.types import Episode, EpisodeStart

SHEET = "cheatsheet"  # kv store and key of the cumulative sheet
EPISODES = "episodes"  # vector store of the retrieval-synthesis variant
OBSERVATION_CHARS = 200

CURATE_PROMPT = """\
You maintain a cheatsheet that helps an agent solve tasks of this kind. Below are the current
cheatsheet and the agent's latest episode. Write the new cheatsheet: keep what still holds, add
strategies that worked and mistakes to avoid, fix or drop what this episode shows is wrong, and
merge duplicates. Be concise and general (no one-off names); at most {max_chars} characters.

Current cheatsheet:
{sheet}

Latest episode ({outcome}):
{episode}"""

SYNTHESISE_PROMPT = """\
An agent is about to start the task below. Here are the most similar past episodes. Write a
short cheatsheet for this task: strategies that worked, mistakes to avoid, useful action
patterns. Be concrete; at most {max_chars} characters.

New task: {task}
First observation: {observation}

Past episodes:
{episodes}"""

Variant = Literal["cumulative", "retrieval_synthesis"]


class Sheet(BaseModel):
    cheatsheet: str


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def episode_text(episode: Episode, max_steps: int = 40) -> str:
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


def outcome_word(success: bool) -> str:
    return "success" if success else "failure"


class DynamicCheatsheet(MemoryDesign):
    """A cheatsheet curated by the memory model, in one of the paper's two variants.

    After Suzgun, Yuksekgonul, Bianchi, Jurafsky and Zou, 2025, "Dynamic Cheatsheet: Test-Time
    Learning with Adaptive Memory", arXiv:2504.07952.

    ``variant="cumulative"`` (DC-Cu, the default): after each episode the curator sees the
    current sheet and the episode and writes the whole new sheet; ``retrieve`` returns it.
    ``variant="retrieval_synthesis"`` (DC-RS): each episode is stored with one embedding of its
    task and first observation; ``retrieve`` fetches the ``k`` most similar past episodes and
    asks the model to synthesise a sheet for the new task.

    A curator answer replaces the sheet only when it is schema-valid, non-empty and at most
    ``max_chars`` long; otherwise the previous sheet stays. A failed synthesis falls back to a
    plain list of the retrieved episodes.

    Simplified: the curator is told the environment's outcome (the paper's curator judges the
    answer itself); in DC-RS the synthesised sheet is not carried over to the next task, so
    ``retrieve`` never changes the memory and concurrent retrievals stay independent.

    Returns ``{"cheatsheet": "..."}``, or ``{}`` while there is no sheet.
    """

    def __init__(
        self,
        toolkit: Toolkit,
        variant: Variant = "cumulative",
        k: int = 3,
        max_chars: int = 3000,
    ) -> None:
        super().__init__(toolkit)
        if variant not in ("cumulative", "retrieval_synthesis"):
            raise ValueError(
                f"unknown variant {variant!r}: use 'cumulative' or 'retrieval_synthesis'"
            )
        self.variant: Variant = variant
        self.k = k
        self.max_chars = max_chars

    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        if self.variant == "cumulative":
            sheet = self.toolkit.kv(SHEET).get(SHEET, "")
            return {"cheatsheet": sheet} if sheet else {}
        store = self.toolkit.vectors(EPISODES)
        if len(store) == 0 or self.k <= 0:
            return {}
        query = await self.toolkit.embed(f"{start.task_description}\n{start.observation}")
        hits = store.search(query, k=self.k)
        listed = "\n\n".join(
            f"[{outcome_word(hit.item['success'])}] {hit.item['text']}" for hit in hits
        )
        prompt = SYNTHESISE_PROMPT.format(
            max_chars=self.max_chars,
            task=start.task_description,
            observation=clip(start.observation, 400),
            episodes=listed,
        )
        sheet = await self._ask_for_sheet(prompt)
        if sheet is None:  # no usable synthesis: list what the similar episodes did
            sheet = "\n".join(
                f"[{outcome_word(hit.item['success'])}] {hit.item['task']}: "
                + ", ".join(hit.item["actions"])
                for hit in hits
            )
            if len(sheet) > self.max_chars:
                sheet = sheet[: self.max_chars - 3] + "..."
        return {"cheatsheet": sheet}

    async def update(self, episode: Episode) -> None:
        if self.variant == "retrieval_synthesis":
            start = episode.start
            vector = await self.toolkit.embed(f"{start.task_description}\n{start.observation}")
            item = {
                "task": start.task_description,
                "success": episode.outcome.success,
                "actions": [step.action for step in episode.steps],
                "text": episode_text(episode, max_steps=20),
            }
            self.toolkit.vectors(EPISODES).add(vector, item)
            return
        store = self.toolkit.kv(SHEET)
        prompt = CURATE_PROMPT.format(
            max_chars=self.max_chars,
            sheet=store.get(SHEET, "") or "(empty)",
            outcome=outcome_word(episode.outcome.success),
            episode=episode_text(episode),
        )
        sheet = await self._ask_for_sheet(prompt)
        if sheet is not None:
            store.set(SHEET, sheet)

    async def _ask_for_sheet(self, prompt: str) -> str | None:
        """The model's sheet, or None when its answer is unusable."""
        try:
            answer = await self.toolkit.llm(prompt, schema=Sheet)
        except Exception:
            return None
        if not isinstance(answer, Sheet):
            return None
        sheet = answer.cheatsheet.strip()
        if not sheet or len(sheet) > self.max_chars:
            return None
        return sheet

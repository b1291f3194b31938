"""G-Memory: a query graph with trajectories below it and an insight graph above it."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel

from alma.memory import MemoryDesign, Toolkit
from alma.types import Episode, EpisodeStart

QUERIES = "queries"  # query graph (nodes q0, q1, ...) and the vector store over its nodes
INSIGHTS = "insights"  # insight graph (insight nodes i0, i1, ... -> the query nodes they rest on)
OBSERVATION_CHARS = 200
INSIGHT_CHARS = 300

SELECT_PROMPT = """\
An agent is about to start this task:
{task}

Below are past tasks from its memory, numbered. Choose the ones whose trajectories would help
most with the new task (at most {count}); answer with their numbers.

{candidates}"""

INSIGHT_PROMPT = """\
Below is an agent's episode ({outcome}). Write at most {count} short insights that would help
on similar tasks: general rules of what works and what to avoid (no one-off names). Leave out
anything that is already among the known insights.

Known insights:
{known}

Episode:
{episode}"""


class Selection(BaseModel):
    chosen: list[int]


class Insights(BaseModel):
    insights: list[str]


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def query_text(start: EpisodeStart) -> str:
    return f"{start.task_description}\n{start.observation}"


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


class GMemory(MemoryDesign):
    """Three tiers: insights above, queries in the middle, trajectories below.

    After Zhang, Fu, Wan, Yu, Wang and Yan, 2025, "G-Memory: Tracing Hierarchical Memory for
    Multi-Agent Systems", arXiv:2506.07398.

    - Query graph (``toolkit.graph("queries")``): one node per past task, holding its
      embedding, outcome and trajectory; an edge joins two tasks whose embeddings are at least
      ``edge_threshold`` similar (both directions, weight = similarity).
    - Interaction tier: each query node keeps its trajectory (actions and a compact step text).
    - Insight graph (``toolkit.graph("insights")``): insight nodes, each linked to the query
      nodes whose episodes support it.

    Retrieve: embed the new task once, take the ``k_queries`` most similar query nodes and their
    1-hop neighbours, ask the memory model to choose the ``max_trajectories`` most relevant
    (by index; the most similar ones when its answer is invalid), and return their trajectories
    and the insights linked to them (most supported first). Update: add the query node and its
    similarity edges, store the trajectory, ask the model for insights and merge them: a new
    insight whose embedding is at least ``merge_threshold`` similar to a known one links the new
    query to the known insight instead of adding a duplicate.

    Simplified: one agent, so a trajectory is the action sequence rather than a graph of agent
    utterances, and it is shown truncated rather than sparsified by the model; query edges join
    similar tasks (the paper links a new query to the past queries retrieved for it); no per-role
    customisation of insights; the model is not asked to choose when there are no more
    candidates than ``max_trajectories``; insights are never pruned.

    Returns ``{"insights": [...], "relevant_trajectories": [{"task", "outcome", "steps",
    "actions"}]}``, or ``{}`` while memory is empty.
    """

    def __init__(
        self,
        toolkit: Toolkit,
        k_queries: int = 3,
        max_candidates: int = 8,
        max_trajectories: int = 2,
        max_insights: int = 5,
        insights_per_episode: int = 3,
        edge_threshold: float = 0.6,
        max_edges: int = 5,
        merge_threshold: float = 0.9,
        max_steps_shown: int = 30,
    ) -> None:
        super().__init__(toolkit)
        self.k_queries = k_queries
        self.max_candidates = max_candidates
        self.max_trajectories = max_trajectories
        self.max_insights = max_insights
        self.insights_per_episode = insights_per_episode
        self.edge_threshold = edge_threshold
        self.max_edges = max_edges
        self.merge_threshold = merge_threshold
        self.max_steps_shown = max_steps_shown

    # ------------------------------------------------------------------ retrieve
    async def retrieve(self, start: EpisodeStart) -> dict[str, Any]:
        queries = self.toolkit.graph(QUERIES)
        if queries.number_of_nodes() == 0:
            return {}
        vector = await self.toolkit.embed(query_text(start))
        candidates = self._candidates(vector)
        chosen = await self._select(start, candidates)
        trajectories = []
        for node in chosen:
            data = queries.nodes[node]
            actions: list[str] = data["actions"]
            trajectories.append(
                {
                    "task": data["task"],
                    "outcome": "success" if data["success"] else "failure",
                    "steps": len(actions),
                    "actions": actions[: self.max_steps_shown],
                }
            )
        return {"insights": self._insights_for(chosen), "relevant_trajectories": trajectories}

    def _candidates(self, vector: np.ndarray) -> list[str]:
        """The most similar query nodes and their 1-hop neighbours, most similar first."""
        queries = self.toolkit.graph(QUERIES)
        seeds = [
            hit.item["node"]
            for hit in self.toolkit.vectors(QUERIES).search(vector, k=self.k_queries)
        ]
        nodes = list(dict.fromkeys(seeds + [n for seed in seeds for n in queries.successors(seed)]))
        similarity = {node: float(queries.nodes[node]["embedding"] @ vector) for node in nodes}
        nodes.sort(key=lambda node: -similarity[node])  # stable: ties keep insertion order
        return nodes[: self.max_candidates]

    async def _select(self, start: EpisodeStart, candidates: list[str]) -> list[str]:
        """The model's choice among the candidates, or the most similar ones."""
        fallback = candidates[: self.max_trajectories]
        if len(candidates) <= self.max_trajectories:
            return fallback
        queries = self.toolkit.graph(QUERIES)
        listed = "\n".join(
            f"{index}. [{'success' if queries.nodes[node]['success'] else 'failure'}] "
            f"{clip(queries.nodes[node]['task'], 300)}"
            for index, node in enumerate(candidates)
        )
        prompt = SELECT_PROMPT.format(
            task=clip(start.task_description, 500),
            count=self.max_trajectories,
            candidates=listed,
        )
        try:
            answer = await self.toolkit.llm(prompt, schema=Selection)
        except Exception:
            return fallback
        if not isinstance(answer, Selection):
            return fallback
        picked = [i for i in dict.fromkeys(answer.chosen) if 0 <= i < len(candidates)]
        if not picked:
            return fallback
        return [candidates[i] for i in picked[: self.max_trajectories]]

    def _insights_for(self, chosen: list[str]) -> list[str]:
        """Insights linked to the chosen queries: most links to them first, then most support."""
        graph = self.toolkit.graph(INSIGHTS)
        links: dict[str, int] = {}
        for node in chosen:
            if node in graph:
                for insight in graph.predecessors(node):
                    links[insight] = links.get(insight, 0) + 1
        ranked = sorted(links, key=lambda i: (-links[i], -graph.out_degree(i)))
        return [graph.nodes[i]["text"] for i in ranked[: self.max_insights]]

    # ------------------------------------------------------------------ update
    async def update(self, episode: Episode) -> None:
        vector = await self.toolkit.embed(query_text(episode.start))
        node = self._add_query(episode, vector)
        known = self._insights_for([node, *self.toolkit.graph(QUERIES).successors(node)])
        prompt = INSIGHT_PROMPT.format(
            outcome="success" if episode.outcome.success else "failure",
            count=self.insights_per_episode,
            known="\n".join(f"- {text}" for text in known) or "(none)",
            episode=episode_text(episode),
        )
        try:
            answer = await self.toolkit.llm(prompt, schema=Insights)
        except Exception:
            return  # the query and its trajectory are kept; no new insight this time
        if not isinstance(answer, Insights):
            return
        texts = [clip(text, INSIGHT_CHARS) for text in answer.insights]
        texts = list(dict.fromkeys(text for text in texts if text))[: self.insights_per_episode]
        if texts:
            self._merge_insights(node, texts, await self.toolkit.embed(texts))

    def _add_query(self, episode: Episode, vector: np.ndarray) -> str:
        queries, store = self.toolkit.graph(QUERIES), self.toolkit.vectors(QUERIES)
        node = f"q{queries.number_of_nodes()}"
        neighbours = [
            hit
            for hit in store.search(vector, k=self.max_edges)
            if hit.score >= self.edge_threshold
        ]
        queries.add_node(
            node,
            task=episode.start.task_description,
            success=bool(episode.outcome.success),
            embedding=np.asarray(vector, dtype=np.float32),
            actions=[step.action for step in episode.steps],
            trajectory=episode_text(episode, max_steps=self.max_steps_shown),
        )
        for hit in neighbours:
            queries.add_edge(node, hit.item["node"], weight=hit.score)
            queries.add_edge(hit.item["node"], node, weight=hit.score)
        store.add(vector, {"node": node})
        return node

    def _merge_insights(self, query: str, texts: list[str], vectors: np.ndarray) -> None:
        graph, store = self.toolkit.graph(INSIGHTS), self.toolkit.vectors(INSIGHTS)
        graph.add_node(query, kind="query")
        for text, vector in zip(texts, vectors, strict=True):
            nearest = store.search(vector, k=1)
            if nearest and nearest[0].score >= self.merge_threshold:
                insight = nearest[0].item["node"]
            else:
                insight = f"i{len(store)}"
                graph.add_node(insight, kind="insight", text=text)
                store.add(vector, {"node": insight})
            graph.add_edge(insight, query)

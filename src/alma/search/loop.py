"""``alma learn``: the open-ended search over memory designs.

1. Evaluate ``no_memory`` on the train tasks: the reference score.
2. Seed the archive: ``no_memory``, the reference designs if asked, the user's own design files
   (``--seed-design``), and one design the meta agent writes from scratch.
3. Each iteration: pick up to k parents with the selector; for each, concurrently: analyse its
   evaluation logs, implement a new design, verify it (static checks and a sandbox smoke run,
   with up to ``max_repairs`` repair rounds), evaluate it, archive it.
4. Stop at the last iteration, when the budget is spent, or on Ctrl-C.

Every step is written to the run database as it finishes. A resumed run redoes only what was
not finished: the pick of an iteration and its RNG state are stored together; a parent's
analysis and its child are found again by (parent, iteration); evaluations are reused by their
key; the meta agent's calls carry seeds, so with the response cache they replay identically.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from alma.config import AlmaConfig
from alma.domains.base import Domain
from alma.errors import AlmaError, BudgetExceededError, LLMError, UsageError
from alma.evaluate.compare import ComparisonRow, compare
from alma.evaluate.protocol import EvaluationIncomplete, Evaluator, gather_all
from alma.evaluate.results import EvalResult
from alma.evaluate.tasks import Selection
from alma.llm.factory import parse_model_spec
from alma.memory.check import CheckReport, check_design
from alma.memory.loading import DesignSource, read_design, reference_design, reference_names
from alma.run import Run
from alma.search.archive import Archive, DesignStatus
from alma.search.episode_sample import sample_episodes
from alma.search.meta_agent import MetaAgent
from alma.search.proposal import Analysis, Implementation
from alma.search.selection import make_selector
from alma.search.state import Progress, Summary, Turn

log = logging.getLogger("alma.search")

REFERENCE = "no_memory"
FALLBACK_REFERENCE = "trajectory_retrieval"  # held out against it when no baseline was seeded
META_STAGES = ("analysis", "implementation", "from_scratch", "repair")
# a design as verification left it: the last code, its report, and every attempt
Verified = tuple[DesignSource, CheckReport, list[tuple[DesignSource, CheckReport]]]


def seed_of(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def meta_spec(config: AlmaConfig) -> str:
    """The meta model's spec; plain ``scripted`` means the meta agent's own scripted double."""
    spec = parse_model_spec(config.models.meta)
    if spec.provider == "scripted" and not spec.name:
        return f"scripted:meta@{spec.latency_s}"
    return config.models.meta


class Learner:
    def __init__(
        self,
        run: Run,
        domain: Domain,
        *,
        evaluator: Evaluator | None = None,
        progress: Progress | None = None,
        tasks: Selection | None = None,
    ) -> None:
        """``tasks``: the build and deploy halves every evaluation of the search plays, when
        the caller drew them already (else each evaluation draws them from the settings)."""
        self.run = run
        self.tasks = tasks
        self.config = run.config
        self.settings = run.config.learn
        self.domain = domain
        self.archive = Archive(run.store)
        self.evaluator = evaluator or Evaluator(run, domain)
        self.progress = progress or Progress()
        # one metered model per meta step, so the ledger tells what each stage costs
        spec = meta_spec(self.config)
        self.meta_llms = {
            stage: run.models.llm(spec, "meta", ledger=run.ledger.child(f"meta:{stage}"))
            for stage in META_STAGES
        }
        self.factory = self.evaluator.runner_factory

    # ------------------------------------------------------------------ the loop
    async def learn(self) -> Summary:
        state = self.archive.load_state() or {"iteration": 0, "selector": None}
        selector = make_selector(
            self.settings.selector, self.config.run.seed, self.settings.temperature
        )
        if state.get("selector"):
            selector.restore(state["selector"])
        self.progress.iterations = self.settings.iterations
        await self._reference()
        await self._seed()
        self.progress.clear()
        first = int(state.get("iteration", 0)) + 1
        for iteration in range(first, self.settings.iterations + 1):
            self.progress.iteration = iteration
            picked = self.archive.selection(iteration)
            if picked is not None:
                parents = list(picked.parents)
            else:
                candidates = self.archive.candidates()
                reference = self.archive.reference_score() or 0.0
                chosen = selector.select(candidates, self.settings.parents_per_iteration, reference)
                parents = list(chosen.chosen)
                state = {"iteration": iteration - 1, "selector": selector.state()}
                self.archive.add_selection(iteration, parents, chosen.probabilities, state=state)
            turns = Turn.line(len(parents))
            await gather_all(
                self._child(p, iteration, turn) for p, turn in zip(parents, turns, strict=True)
            )
            self.archive.save_state({"iteration": iteration, "selector": selector.state()})
            self.progress.clear()
            self._update_best()
            if self.progress.iteration_done is not None:
                self.progress.iteration_done(iteration)
        summary = self.summary()
        summary.held_out = await self.held_out()
        return summary

    def summary(self, stopped: str | None = None) -> Summary:
        state = self.archive.load_state() or {}
        return Summary(
            int(state.get("iteration", 0)),
            self.archive.reference_score(),
            self.archive.designs(),
            stopped,
        )

    async def held_out(self) -> list[ComparisonRow]:
        """The search's answer on tasks it never saw: its best learned design against
        ``no_memory`` and the best reference design (by train score; trajectory retrieval when
        none was evaluated), each on the held-out split, with paired comparisons."""
        split = self.settings.held_out
        if split == "none":
            return []
        ranked = self.archive.best(len(self.archive))
        learned = [d for d in ranked if d.origin == "generated"]
        references = [d for d in ranked if d.origin == "reference" and d.name != REFERENCE]
        designs = [learned[0].design()] if learned else []
        designs.append(
            references[0].design() if references else reference_design(FALLBACK_REFERENCE)
        )
        self.progress.set("held out", f"comparing on {split}")
        rows = await compare(self.evaluator, designs, split, quick=self.settings.quick)
        for row in rows:
            if row.result.status == "incomplete":
                raise EvaluationIncomplete(
                    f"the held-out evaluation of {row.result.design_name} is incomplete: "
                    f"{row.result.error}",
                    hint=f"fix the cause and go on with `alma learn --resume {self.run.path}`",
                )
            if row.result.scored and row.result.design_id in self.archive:
                self.archive.record_evaluation(row.result.design_id, row.result, role=split)
        self.progress.clear()
        return rows

    def _update_best(self) -> None:
        best = self.archive.best(1)
        if best and best[0].score is not None:
            self.progress.best = (best[0].name, best[0].score)

    # ------------------------------------------------------------------ seeding
    async def _reference(self) -> None:
        design = reference_design(REFERENCE)
        self.archive.add_design(design, parent=None, iteration=0, idea="no memory at all")
        result = await self._evaluate(design, "reference")
        if result.scored:
            self.archive.set_reference_score(result.score)

    async def _seed(self) -> None:
        if self.settings.seed_designs == "baselines":
            for name in reference_names():
                if name == REFERENCE:
                    continue
                design = reference_design(name)
                if design.origin != "reference":
                    continue
                self.archive.add_design(design, parent=None, iteration=0, idea=f"reference: {name}")
                await self._evaluate(design, name)
        for file in self.settings.seed_files:  # the user's own designs
            design = read_design(Path(file))
            self.archive.add_design(design, parent=None, iteration=0, idea=f"yours: {file}")
            await self._evaluate(design, design.name)
        scratch = [
            d for d in self.archive.designs() if d.origin == "generated" and d.iteration == 0
        ]
        if not scratch:
            await self._create("scratch", parent=None, iteration=0)
        elif scratch[-1].status == "verified":  # written before an interruption: finish it
            await self._evaluate(scratch[-1].design(), "scratch")
        self._update_best()

    # ------------------------------------------------------------------ one child
    async def _child(self, parent_id: str, iteration: int, turn: Turn) -> None:
        try:
            existing = [
                d
                for d in self.archive.designs()
                if d.parent == parent_id and d.iteration == iteration
            ]
            if existing:  # the child was made before an interruption: only finish it
                turn.done()
                child = existing[-1]  # the last repair, when an evaluation sent it back
                if child.status == "verified":
                    await self._evaluate(child.design(), child.id)
                return
            await self._create(parent_id[:8], parent=parent_id, iteration=iteration, turn=turn)
        finally:
            turn.done()  # a child that failed early must not hold up the next ones

    def _meta(self, stage: str, iteration: int, parent: str | None) -> MetaAgent:
        return MetaAgent(
            self.meta_llms[stage],
            token_budget=self.settings.meta_token_budget,
            max_tokens=self.settings.meta_max_tokens,
            seed=seed_of(self.config.run.seed, iteration, parent or "scratch"),
        )

    async def _create(
        self,
        key: str,
        *,
        parent: str | None,
        iteration: int,
        turn: Turn | None = None,
    ) -> None:
        try:
            await self._write_and_check(key, parent=parent, iteration=iteration, turn=turn)
        except (BudgetExceededError, UsageError):
            raise
        except LLMError as failure:  # the meta model failed this child: the search goes on
            log.warning("the meta model failed (%s): %s", key, failure.message)
            self.run.store.set_meta(
                f"meta_failure:{iteration}:{parent or 'scratch'}", failure.message
            )
            self.progress.set(key, "meta model failed")

    async def _write_and_check(
        self,
        key: str,
        *,
        parent: str | None,
        iteration: int,
        turn: Turn | None = None,
    ) -> None:
        description = self.domain.description
        if parent is None:
            self.progress.set(key, "implementing from scratch")
            written = await self._meta("from_scratch", iteration, parent).from_scratch(description)
        else:
            self.progress.set(key, "analysing")
            analysis = await self._analysis(
                self._meta("analysis", iteration, parent), parent, iteration
            )
            self.progress.set(key, "implementing")
            record = self.archive.get(parent)
            assert record is not None
            written = await self._meta("implementation", iteration, parent).implement(
                record.design().source, analysis, description, parent_name=record.name
            )
        repairer = self._meta("repair", iteration, parent)
        verified = await self._verify(repairer, written, key)
        design, report, attempts = verified
        if not await self._archive(verified, written.idea, parent, iteration, turn):
            # the same code is archived already (and evaluated by its first writer)
            self.progress.set(key, "duplicate of an archived design")
            return
        if not report.passed:
            self.progress.set(key, "failed verification")
            return
        result = await self._evaluate(design, key)
        repairs_left = self.settings.max_repairs - (len(attempts) - 1)
        if result.status == "design_failed" and repairs_left > 0:
            # broken in the evaluation: repaired like a design that failed verification
            await self._repair_failed(
                repairer, design, result, written, key, parent=parent, iteration=iteration
            )

    async def _repair_failed(
        self,
        meta: MetaAgent,
        design: DesignSource,
        result: EvalResult,
        written: Implementation,
        key: str,
        *,
        parent: str | None,
        iteration: int,
    ) -> None:
        self.progress.set(key, "repairing after its evaluation")
        problem = f"the design failed during its evaluation: {result.error}"
        fixed = await meta.repair(design.source, problem, self.domain.description, name=design.name)
        retry = Implementation(name=fixed.name or design.name, idea=written.idea, code=fixed.code)
        verified = await self._verify(meta, retry, key, repairs=0)
        again, report, _ = verified
        if await self._archive(verified, written.idea, parent, iteration) and report.passed:
            await self._evaluate(again, key)

    async def _archive(
        self,
        verified: Verified,
        idea: str,
        parent: str | None,
        iteration: int,
        turn: Turn | None = None,
    ) -> bool:
        """Archive a verified (or not) design with its verification attempts; False when the
        same code is archived already. Children of one iteration wait for their ``turn``, so
        they are archived in their parents' order."""
        design, report, attempts = verified
        status: DesignStatus = "verified" if report.passed else "failed_verification"
        if turn is not None:
            await turn.wait()
        added = self.archive.add_design(
            design, parent=parent, iteration=iteration, idea=idea, status=status
        )
        if turn is not None:
            turn.done()
        if added:
            for number, (attempt, attempt_report) in enumerate(attempts):
                self.archive.add_verification(
                    design.id,
                    number,
                    attempt_report.passed,
                    attempt_report.as_dict(),
                    attempt.source,
                )
        return added

    async def _analysis(self, meta: MetaAgent, parent: str, iteration: int) -> Analysis:
        done = [a for a in self.archive.analyses(parent) if a.iteration == iteration]
        if done:
            return Analysis.model_validate(done[0].analysis)
        record = self.archive.get(parent)
        assert record is not None
        analysis = await meta.analyse(
            record.design().source,
            record.name,
            record.score,
            self.archive.reference_score(),
            sample_episodes(self.run.store, record.eval_key, self.settings.analysis_episodes),
            self.domain.description,
        )
        self.archive.add_analysis(parent, iteration, analysis.model_dump())
        return analysis

    async def _verify(
        self, meta: MetaAgent, written: Implementation, key: str, *, repairs: int | None = None
    ) -> Verified:
        """Check the design; repair and check again up to ``repairs`` times (default: the
        run's max_repairs) while it fails."""
        attempts: list[tuple[DesignSource, CheckReport]] = []
        design = DesignSource(written.name, written.code, "generated")
        repairs = self.settings.max_repairs if repairs is None else repairs
        for round_number in range(repairs + 1):
            self.progress.set(key, "verifying" if round_number == 0 else f"repair {round_number}")
            report = await check_design(
                design,
                self.factory,
                memory_chars=self.config.agent.memory_chars,
            )
            attempts.append((design, report))
            if report.passed or round_number == repairs:
                break
            fixed = await meta.repair(
                design.source, report.summary(), self.domain.description, name=design.name
            )
            design = DesignSource(fixed.name or written.name, fixed.code, "generated")
        return design, report, attempts

    async def _evaluate(self, design: DesignSource, key: str) -> EvalResult:
        self.progress.set(key, "evaluating")
        self.factory.prewarm()
        result = await self.evaluator.evaluate(
            design, self.settings.split, quick=self.settings.quick, tasks=self.tasks
        )
        if result.status == "incomplete":  # not a score, not even a low one: stop, resume later
            raise EvaluationIncomplete(
                f"the evaluation of {design.name} is incomplete: {result.error}",
                hint="fix the cause (the endpoint, the domain) and go on with "
                f"`alma learn --resume {self.run.path}`",
            )
        self.archive.record_evaluation(design.id, result, role="train")
        self.progress.set(key, "done" if result.scored else "evaluation failed")
        self._update_best()
        return result


class LearnStopped(AlmaError):
    """The loop stopped early (budget); what it did is saved and resumes with --resume."""

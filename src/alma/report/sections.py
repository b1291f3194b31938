"""The sections of one run's part of the report: summary, lineage, scores, designs, held-out
tasks, heat map, failures and cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape

from alma.evaluate.statistics import PairedComparison
from alma.report import metrics, svg
from alma.report.cells import (
    cell,
    counts_text,
    date_text,
    duration_text,
    interval_text,
    num_text,
    p_text,
    score_text,
    signed_text,
    usd_text,
)
from alma.report.data import ROLES, RunData
from alma.report.metrics import DesignMetrics

SIGNIFICANT = 0.05


def best_design(rows: list[DesignMetrics]) -> DesignMetrics | None:
    scored = [r for r in rows if r.score is not None and r.train is not None]
    if not scored:
        return None
    return min(
        scored,
        key=lambda r: (
            -(r.score or 0.0),
            r.train.stderr or 0.0 if r.train else 0.0,
            r.design.created,
        ),
    )


def summary_section(run: RunData, rows: list[DesignMetrics], best: DesignMetrics | None) -> str:
    models = run.config.get("models", {}) if isinstance(run.config.get("models"), dict) else {}
    splits = sorted({e.split for e in run.evaluations.values()})
    statuses = Counter(d.status for d in run.designs)
    eval_statuses = Counter(e.status for e in run.evaluations.values())
    facts = [
        ("run", f"{run.name}"),
        ("folder", str(run.path)),
        ("domain", run.domain or "?"),
        ("search split", run.setting("learn", "split", "?")),
        ("held-out split", run.setting("learn", "held_out", "?")),
        ("splits evaluated", ", ".join(splits) or "-"),
        ("meta model", models.get("meta", "?")),
        ("agent model", models.get("agent", "?")),
        ("memory model", models.get("memory") or models.get("agent", "?")),
        ("embedder", models.get("embedder", "?")),
        ("seed", run.setting("run", "seed", "?")),
        ("iterations", run.setting("learn", "iterations", "?")),
        ("parents per iteration", run.setting("learn", "parents_per_iteration", "?")),
        ("selector", run.setting("learn", "selector", "?")),
        ("seed designs", run.setting("learn", "seed_designs", "?")),
        ("quick", run.setting("learn", "quick", "?")),
        ("rollout", run.setting("eval", "rollout", "?")),
        ("repeats", run.setting("eval", "repeats", "?")),
        ("tasks", run.setting("eval", "tasks", None) or "default"),
        ("started", date_text(run.started)),
        ("last write", date_text(run.ended)),
        ("wall time", duration_text(run.ended - run.started) if run.started and run.ended else "-"),
        ("designs", counts_text(len(run.designs), statuses)),
        ("evaluations", counts_text(len(run.evaluations), eval_statuses)),
        ("episodes", str(len(run.episodes))),
        ("no_memory score", num_text(run.reference_score)),
        (
            "best design",
            f"{best.design.name} {score_text(best)}" if best is not None else "-",
        ),
    ]
    grid = "".join(f'<div class="kv"><b>{escape(k)}</b> {escape(str(v))}</div>' for k, v in facts)
    spend_rows = []
    total = [0, 0, 0, 0.0, 0, 0, 0]
    for s in run.spend:
        if s.role not in ROLES and not s.calls:
            continue
        numbers = [
            s.calls,
            s.prompt_tokens,
            s.completion_tokens,
            s.cost_usd,
            s.cache_hits,
            s.retries,
            s.errors,
        ]
        total = [a + b for a, b in zip(total, numbers, strict=True)]
        spend_rows.append(spend_row(s.role, numbers))
    spend_rows.append(spend_row("total", total, bold=True))
    spend = (
        "<h3>Tokens and dollars by role</h3><table><thead><tr><th class=l>role</th><th>calls</th>"
        "<th>prompt tokens</th><th>completion tokens</th><th>dollars</th><th>cache hits</th>"
        "<th>retries</th><th>failed calls</th></tr></thead><tbody>"
        + "".join(spend_rows)
        + "</tbody></table>"
    )
    return f'<section class="block"><h2>Summary</h2><div class="grid">{grid}</div>{spend}</section>'


def spend_row(role: str, numbers: Sequence[float], *, bold: bool = False) -> str:
    calls, prompt, completion, dollars, hits, retries, errors = numbers
    cells = [
        f"{int(calls):,}",
        f"{int(prompt):,}",
        f"{int(completion):,}",
        usd_text(dollars),
        f"{int(hits):,}",
        f"{int(retries):,}",
        f"{int(errors):,}",
    ]
    tag = "th" if bold else "td"
    return (
        f"<tr><{tag} class=l>{escape(role)}</{tag}>"
        + "".join(f"<{tag}>{c}</{tag}>" for c in cells)
        + "</tr>"
    )


def lineage_section(run: RunData, rows: list[DesignMetrics], best: DesignMetrics | None) -> str:
    nodes = [
        svg.TreeNode(
            id=r.design.id,
            parent=r.design.parent,
            iteration=r.design.iteration,
            label=r.design.name,
            score=r.score,
            tip=f"{r.design.name} ({r.design.id}) · iteration {r.design.iteration} · "
            f"{r.design.status} · score {score_text(r)}",
            best=best is not None and r.design.id == best.design.id,
            failed=r.score is None,
        )
        for r in rows
    ]
    tree = svg.lineage_tree(nodes, title=f"lineage of {run.name}")
    return (
        '<section class="block"><h2>Lineage</h2><p class="muted">Columns are iterations; '
        "click a design to see its idea, the analysis that led to it, its verification, code "
        f"and change from its parent. {svg.colour_scale()} · red ring: best design</p>"
        f'<div class="lineage"><div class="scroll">{tree}</div>'
        '<div class="details"><p class="muted">Select a design.</p></div></div></section>'
    )


def scores_section(run: RunData) -> str:
    points = metrics.best_so_far(run)
    curve = svg.Curve(
        "best so far (95% CI)",
        [(p.iteration, p.score, p.ci_low, p.ci_high) for p in points],
        designs=[p.design_id for p in points],
    )
    dots = []
    for design in run.designs:
        evaluation = run.train(design)
        if evaluation is not None and evaluation.score is not None:
            dots.append(
                (
                    float(design.iteration),
                    evaluation.score,
                    design.id,
                    f"{design.name}: {evaluation.score:.3f}",
                )
            )
    best_chart = svg.step_chart(
        [curve],
        title="best score over iterations",
        x_label="iteration",
        y_label="train score",
        dots=dots,
        level=run.reference_score,
        level_name="no_memory",
    )
    colours: dict[str, str] = {}
    bars = []
    for i, evaluation in enumerate(run.evaluations.values()):
        if evaluation.score is None:
            continue
        colour = colours.setdefault(evaluation.split, svg.PALETTE[len(colours) % len(svg.PALETTE)])
        low = evaluation.ci_low if evaluation.ci_low is not None else evaluation.score
        high = evaluation.ci_high if evaluation.ci_high is not None else evaluation.score
        tip = (
            f"{evaluation.design_name} on {evaluation.split}: {evaluation.score:.3f} "
            f"[{low:.3f}, {high:.3f}] ± {evaluation.stderr or 0:.3f} (s.e.)"
        )
        bars.append((float(i), evaluation.score, low, high, colour, evaluation.design_id, tip))
    every = svg.error_bars(
        bars,
        title="every evaluation",
        x_label="evaluation (in the order run)",
        y_label="score (95% CI)",
        legend=list(colours.items()),
    )
    return (
        '<section class="block"><h2>Scores</h2><div class="plots">'
        f"<div><h3>Best score over iterations</h3>{best_chart}</div>"
        f"<div><h3>Every evaluation, score with its 95% interval</h3>{every}</div></div></section>"
    )


COLUMNS = (
    ("design", "l"),
    ("origin", "l"),
    ("iter.", ""),
    ("status", "l"),
    ("score [95% CI]", ""),
    ("± s.e.", ""),
    ("Δ no_memory", ""),
    ("p", ""),
    ("Δ best ref.", ""),
    ("p", ""),
    ("Δ parent", ""),
    ("agent tok/ep", ""),
    ("memory tok/ep", ""),
    ("agent $/ep", ""),
    ("memory $/ep", ""),
    ("memory chars", ""),
    ("failed ep.", ""),
    ("errored ep.", ""),
    ("failed memory calls", ""),
    ("failed checks", ""),
    ("chosen", ""),
)


def design_table_section(run: RunData, rows: list[DesignMetrics]) -> str:
    reference = metrics.best_reference(run)
    head = "".join(f'<th data-sort class="{cls}">{escape(name)}</th>' for name, cls in COLUMNS)
    body = []
    ordered = sorted(rows, key=lambda r: (r.score is None, -(r.score or 0.0), r.design.created))
    for r in ordered:
        d, train = r.design, r.train
        cells = [
            cell(f"{d.name} ({d.id[:8]})", d.name, "l"),
            cell(d.origin, d.origin, "l"),
            cell(str(d.iteration), d.iteration),
            cell(d.status, d.status, "l"),
            cell(score_text(r), r.score),
            cell(num_text(train.stderr if train else None), train.stderr if train else None),
            *comparison_cells(r.vs_no_memory),
            *comparison_cells(r.vs_best_reference),
            cell(signed_text(r.gain_over_parent), r.gain_over_parent),
            cell(f"{r.tokens_per_episode['agent']:,.0f}", r.tokens_per_episode["agent"]),
            cell(f"{r.tokens_per_episode['memory']:,.0f}", r.tokens_per_episode["memory"]),
            cell(usd_text(r.usd_per_episode["agent"]), r.usd_per_episode["agent"]),
            cell(usd_text(r.usd_per_episode["memory"]), r.usd_per_episode["memory"]),
            cell(f"{r.memory_chars:,.0f}" if r.memory_chars is not None else "-", r.memory_chars),
            cell(str(r.failed_episodes), r.failed_episodes),
            cell(str(r.errored_episodes), r.errored_episodes),
            cell(str(r.failed_memory_calls), r.failed_memory_calls),
            cell(str(r.failed_verifications), r.failed_verifications),
            cell(str(d.times_chosen), d.times_chosen),
        ]
        body.append(f'<tr data-design="{escape(d.id)}">{"".join(cells)}</tr>')
    note = (
        f"best reference design: {escape(reference.name)}"
        if reference is not None
        else "no reference design besides no_memory was evaluated"
    )
    return (
        '<section class="block"><h2>Designs</h2><p class="muted">Train evaluations; gains are '
        "paired over tasks, p two-sided (paired bootstrap), bold where p &lt; 0.05; tokens and "
        "dollars per episode; memory chars: what memory returned per deploy episode, on "
        f"average. Click a header to sort, a row to select. {note}.</p>"
        f'<div class="scroll"><table class="designs"><thead><tr>{head}</tr></thead><tbody>'
        + "".join(body)
        + "</tbody></table></div></section>"
    )


def comparison_cells(result: PairedComparison | None) -> list[str]:
    if result is None:
        return [cell("-", None), cell("-", None)]
    strong = result.p_value < SIGNIFICANT
    cls = ("pos" if result.gain > 0 else "neg" if result.gain < 0 else "") + (
        " sig" if strong else ""
    )
    tip = f"[{result.ci_low:+.3f}, {result.ci_high:+.3f}] over {result.tasks} tasks"
    gain = signed_text(result.gain)
    return [
        f'<td class="{cls}" data-v="{result.gain:.6g}" title="{tip}">{gain}</td>',
        cell(p_text(result.p_value), result.p_value),
    ]


def held_out_section(run: RunData) -> str:
    found = metrics.held_out(run)
    if not found:
        return ""
    body = []
    for h in found:
        e, train = h.evaluation, run.train(h.design)
        cells = [
            cell(f"{h.design.name} ({h.design.id[:8]})", h.design.name, "l"),
            cell(e.split, e.split, "l"),
            cell(interval_text(train.score, train.ci_low, train.ci_high), train.score)
            if train is not None
            else cell("-", None),
            cell(interval_text(e.score, e.ci_low, e.ci_high), e.score),
            *comparison_cells(h.vs_no_memory),
            cell(str(e.n_episodes), e.n_episodes),
            cell(usd_text(e.cost_usd), e.cost_usd),
        ]
        body.append(f'<tr data-design="{escape(h.design.id)}">{"".join(cells)}</tr>')
    head = "".join(
        f'<th data-sort class="{c}">{n}</th>'
        for n, c in (
            ("design", "l"),
            ("split", "l"),
            ("train score", ""),
            ("score there [95% CI]", ""),
            ("Δ no_memory there", ""),
            ("p", ""),
            ("episodes", ""),
            ("dollars", ""),
        )
    )
    return (
        '<section class="block"><h2>Held-out evaluations</h2><p class="muted">Designs scored '
        "on another split than the search's, next to their train score; each gain is paired "
        "with no_memory on that split.</p><table><thead>"
        f"<tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></section>"
    )


def heat_map_section(run: RunData, rows: list[DesignMetrics]) -> str:
    scored = [r for r in rows if r.train is not None and r.train.per_task]
    if not scored:
        return ""
    scored.sort(key=lambda r: (r.score is None, -(r.score or 0.0), r.design.created))
    tasks = sorted({task for r in scored if r.train for task in r.train.per_task})
    values = [[r.train.per_task.get(t) if r.train else None for t in tasks] for r in scored]
    chart = svg.heat_map(
        [(r.design.id, r.design.name) for r in scored], tasks, values, title="per-task success"
    )
    return (
        '<section class="block"><h2>Per-task success</h2><p class="muted">Success rate over the '
        f"deploy repeats of each design's train evaluation. {svg.colour_scale()}</p>"
        f'<div class="scroll">{chart}</div></section>'
    )


def failures_section(run: RunData) -> str:
    reasons = metrics.failure_reasons(run)
    failed = sum(reasons.values())
    most = max(reasons.values(), default=1)
    reason_rows = "".join(
        f"<tr><td class=l>{escape(reason)}</td><td>{count:,}</td>"
        f'<td class=l><span class=bar style="width:{120 * count / most:.0f}px"></span></td></tr>'
        for reason, count in reasons.most_common()
    )
    statuses = Counter(d.status for d in run.designs)
    design_rows = "".join(
        f"<tr><td class=l>{escape(status)}</td><td>{count}</td></tr>"
        for status, count in sorted(statuses.items())
    )
    errors = metrics.evaluation_errors(run)
    error_rows = "".join(
        f"<tr><td class=l>{escape(reason)}</td><td>{count}</td></tr>"
        for reason, count in errors.most_common(30)
    )
    parts = [
        f"<div><h3>Failed episodes by reason ({failed:,} of {len(run.episodes):,})</h3>",
        "<table><thead><tr><th class=l>reason</th><th>episodes</th><th></th></tr></thead>"
        f"<tbody>{reason_rows or '<tr><td class=l>none</td><td></td><td></td></tr>'}</tbody>"
        "</table></div>",
        "<div><h3>Designs by status</h3><table><thead><tr><th class=l>status</th><th>designs"
        f"</th></tr></thead><tbody>{design_rows}</tbody></table></div>",
    ]
    if error_rows:
        parts.append(
            "<div><h3>Evaluations without a score</h3><table><thead><tr><th class=l>reason</th>"
            f"<th>evaluations</th></tr></thead><tbody>{error_rows}</tbody></table></div>"
        )
    return (
        '<section class="block"><h2>Failures</h2><div class="plots">'
        + "".join(parts)
        + "</div></section>"
    )


ORIGIN_COLOURS = {"reference": svg.PALETTE[0], "generated": svg.PALETTE[2]}


def cost_section(run: RunData, rows: list[DesignMetrics]) -> str:
    scored = [r for r in rows if r.train is not None and r.score is not None]
    if not scored:
        return ""
    dollars = any(r.train.cost_usd > 0 for r in scored if r.train)
    points = []
    for r in scored:
        assert r.train is not None and r.score is not None
        cost = (
            r.train.cost_usd
            if dollars
            else sum(r.train.usage.get(role, {}).get("tokens", 0.0) for role in metrics.SPENDERS)
        )
        what = usd_text(cost) if dollars else f"{cost:,.0f} tokens"
        colour = ORIGIN_COLOURS.get(r.design.origin, svg.PALETTE[4])
        points.append(
            (cost, r.score, colour, r.design.id, f"{r.design.name}: {r.score:.3f}, {what}")
        )
    front = metrics.pareto_front([(p[0], p[1]) for p in points])
    chart = svg.scatter(
        points,
        front=front,
        title="cost efficiency",
        x_label="dollars per evaluation" if dollars else "tokens per evaluation (agent + memory)",
        y_label="train score",
    )
    listed = ", ".join(escape(design_name(points[i][3], run)) for i in front)
    origins = " · ".join(
        f'<span><i style="background:{c}"></i>{o}</span>' for o, c in ORIGIN_COLOURS.items()
    )
    return (
        '<section class="block"><h2>Cost efficiency</h2><p class="muted">Score against what '
        f"each design's train evaluation cost{'' if dollars else ' (no dollars recorded: tokens)'}"
        f'.</p><div class="legend">{origins}</div>{chart}<p>On the Pareto front: {listed}</p>'
        "</section>"
    )


def design_name(design_id: str, run: RunData) -> str:
    design = run.design(design_id)
    return design.name if design is not None else design_id

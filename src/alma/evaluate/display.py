"""Readable output of evaluations and comparisons."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alma.evaluate.compare import ComparisonRow
from alma.evaluate.protocol import EvalResult


def show_result(console: Console, result: EvalResult) -> None:
    deploy = len(result.deploy_tasks)
    if result.scored:
        verdict = (
            f"[bold]{result.score:.3f} ± {result.stderr:.3f}[/] "
            f"(repeats {', '.join(f'{r:.2f}' for r in result.repeats)}; "
            f"95% CI over {deploy} tasks [{result.ci95[0]:.2f}, {result.ci95[1]:.2f}])"
        )
    else:
        verdict = f"[red]no score ({result.status.replace('_', ' ')})[/]"
    console.print(
        f"[bold]{result.design_name}[/] ({result.design_id}) on {result.domain}"
        f"{escape(f'[{result.tasks_source}]') if result.tasks_source else ''}/{result.split}, "
        f"{result.rollout}: {verdict}"
        + (" [dim](from an earlier identical evaluation)[/]" if result.reused else "")
    )
    for purpose in ("agent", "memory"):
        usage = result.usage.get(purpose, {})
        console.print(
            f"  {purpose:<6} {int(usage.get('calls', 0)):>6} calls "
            f"{int(usage.get('tokens', 0)):>10,} tokens  ${float(usage.get('cost_usd', 0.0)):.4f}"
        )
    memory = result.memory
    resumed = (
        f" ({result.resumed_episodes} from an earlier attempt)" if result.resumed_episodes else ""
    )
    skipped = f", {result.skipped_calls} skipped" if result.skipped_calls else ""
    console.print(
        f"  {result.n_episodes} episodes{resumed} in {result.seconds:.1f} s; memory: "
        f"{memory.retrieve_calls} retrieves ({memory.retrieve_errors} failed), "
        f"{memory.update_calls} updates ({memory.update_errors} failed){skipped}, "
        f"{memory.truncated} truncated"
    )
    for error in memory.errors:
        console.print(f"  [yellow]{escape(error)}[/]", highlight=False)
    if result.error:
        what = "design failed" if result.status == "design_failed" else result.status
        console.print(f"  [red]{what}[/]: {escape(result.error)}", highlight=False)


def show_comparison(console: Console, rows: Sequence[ComparisonRow], split: str) -> None:
    table = Table(title=f"designs on {split} (deploy score, 95% CI over tasks)")
    columns = ("design", "score", "95% CI", "gain vs no_memory", "p", "tok/ep", "mem tok/ep")
    for column in (*columns, "mem $/ep"):
        table.add_column(column, justify="left" if column == "design" else "right")
    for row in rows:
        result = row.result
        gain = row.versus_reference
        scored = result.scored
        table.add_row(
            result.design_name
            + ("" if scored else f" [red]({result.status.replace('_', ' ')})[/]"),
            f"{result.score:.3f} ± {result.stderr:.3f}" if scored else "-",
            f"[{result.ci95[0]:.2f}, {result.ci95[1]:.2f}]" if scored else "-",
            "-" if gain is None else f"{gain.gain:+.3f} [{gain.ci_low:+.2f}, {gain.ci_high:+.2f}]",
            "-" if gain is None else f"{gain.p_value:.3f}",
            f"{row.per_episode('agent', 'tokens') + row.per_episode('memory', 'tokens'):,.0f}",
            f"{row.per_episode('memory', 'tokens'):,.0f}",
            f"{row.per_episode('memory', 'cost_usd'):.5f}",
        )
    console.print(table)

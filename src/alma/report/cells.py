"""How the report writes numbers, intervals, dates and table cells."""

from __future__ import annotations

import time
from collections import Counter
from html import escape

from alma.report.metrics import DesignMetrics


def cell(text: str, sort: object, cls: str = "") -> str:
    key = "" if sort is None else escape(str(sort))
    klass = f' class="{cls}"' if cls else ""
    return f'<td{klass} data-v="{key}">{escape(text)}</td>'


def score_text(r: DesignMetrics | None) -> str:
    if r is None or r.train is None or r.train.score is None:
        return "-"
    return interval_text(r.train.score, r.train.ci_low, r.train.ci_high)


def interval_text(score: float | None, low: float | None, high: float | None) -> str:
    if score is None:
        return "-"
    if low is None or high is None:
        return f"{score:.3f}"
    return f"{score:.3f} [{low:.2f}, {high:.2f}]"


def num_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def signed_text(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def p_text(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def usd_text(value: float) -> str:
    if value == 0:
        return "$0"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def counts_text(total: int, by: Counter[str]) -> str:
    detail = ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
    return f"{total}" + (f" ({detail})" if detail else "")


def date_text(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def duration_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"

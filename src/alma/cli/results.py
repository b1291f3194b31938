"""``alma report`` and ``alma export``: what a run learned, for people and for other tools."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from alma import api
from alma.cli.options import JsonFlag, out, print_json


def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories (same domain)")],
    output: Annotated[Path, typer.Option("--out", "-o", help="the HTML file to write")] = Path(
        "report.html"
    ),
    open_it: Annotated[bool, typer.Option("--open", help="open it in a browser")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write one self-contained HTML page (works offline) on one or more runs."""
    written = api.report(run_dirs, output)
    if as_json:
        print_json({"report": str(written), "runs": [str(r) for r in run_dirs]})
    else:
        out.print(f"report written to {written}", highlight=False)
    if open_it:
        webbrowser.open(written.resolve().as_uri())


def export(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, json or parquet")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="folder to write (default: RUN/export)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export a run's designs, evaluations, episodes and ledger (columns: docs/report.md)."""
    written = api.export(run_dir, fmt, output or run_dir / "export")
    if as_json:
        print_json([str(path) for path in written])
    else:
        for path in written:
            out.print(str(path), highlight=False)


def import_design(
    path: Annotated[Path, typer.Argument(help="a design written for the original ALMA (.py)")],
    name: Annotated[str | None, typer.Option("--name", help="the design's name")] = None,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="the alma design file to write")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Bring a design of the original ALMA system to alma (it runs unchanged, in the sandbox)."""
    design = api.import_design(path, name)
    target = output or Path(f"{design.name}.py")
    target.write_text(design.source, encoding="utf-8")
    if as_json:
        print_json({"id": design.id, "name": design.name, "file": str(target)})
        return
    out.print(f"{design.name} ({design.id}) written to {target}", highlight=False)
    out.print(f"evaluate it: alma eval --domain toy --design {target}", highlight=False)


def export_design(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    design_id: Annotated[str, typer.Argument(help="design id (or its first characters)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="alma-original")] = "alma-original",
    output: Annotated[Path | None, typer.Option("--out", "-o", help="file to write")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write an archived design in another system's format (stdout without --out)."""
    code = api.export_design(run_dir, design_id, fmt)
    if as_json:
        if output is not None:
            output.write_text(code, encoding="utf-8")
        print_json({"format": fmt, "code": code, "file": str(output) if output else None})
    elif output is None:
        out.print(code, markup=False, highlight=False, end="")
    else:
        output.write_text(code, encoding="utf-8")
        out.print(f"written to {output}", highlight=False)

"""The commands of ``alma`` and its global options, registered in one place."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

from alma import __version__
from alma.cli import analyses, catalogue, evaluation, results, search
from alma.cli.options import ConfigPath, err, out, state

app = typer.Typer(
    name="alma",
    help="Meta-learn memory designs for LLM agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
models_app = typer.Typer(help="List the models, install the embedded ones.")
domains_app = typer.Typer(help="List the domains, install the packages a domain needs.")
analyse_app = typer.Typer(
    help="The paper's analyses of a search: shift, transfer, scaling.", no_args_is_help=True
)


def _version(value: bool) -> None:
    if value:
        out.print(f"alma {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: ConfigPath = None,
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log more")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    state.config_path = config
    state.debug = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
        force=True,
    )
    for chatty in ("httpx", "httpcore", "openai"):  # one line per request is noise, not news
        logging.getLogger(chatty).setLevel(logging.DEBUG if debug else logging.WARNING)


app.command()(evaluation.play)
app.command("eval")(evaluation.evaluate)
app.command()(evaluation.compare)
app.command()(evaluation.check)
app.command()(search.learn)
app.command("archive")(search.archive)
app.command()(search.show)
app.command()(results.report)
app.command()(results.export)
app.command("import")(results.import_design)
app.command("export-design")(results.export_design)

app.add_typer(analyse_app, name="analyse")
analyse_app.command()(analyses.shift)
analyse_app.command()(analyses.transfer)
analyse_app.command()(analyses.scaling)
app.add_typer(config_app, name="config")
config_app.command("show")(catalogue.config_show)
app.add_typer(models_app, name="models")
models_app.callback(invoke_without_command=True)(catalogue.models)
models_app.command("install")(catalogue.models_install)
app.add_typer(domains_app, name="domains")
domains_app.callback(invoke_without_command=True)(catalogue.domains)
domains_app.command("prepare")(catalogue.domains_prepare)
domains_app.command("install")(catalogue.domains_install)

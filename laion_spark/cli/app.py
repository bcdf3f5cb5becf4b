"""The ``laion-spark`` command line."""

from __future__ import annotations

import typer

from . import __version__
from .commands import COMMAND_MODULES

app = typer.Typer(
    name="laion-spark",
    help=(
        "Build LAION-Aesthetics-style datasets with Spark.\n\n"
        "Typical run: `sample` (or your LAION metadata) -> `score-embeddings` -> `join-tags` "
        "-> `subsets` -> `build-kv`; `demo` does all of it on sample data in a few minutes.\n\n"
        "Every job runs on the embedded Sail engine by default (--engine sail); use --engine local "
        "for classic PySpark, --engine remote --remote sc://... for a Spark Connect server, and "
        "--engine active inside spark-submit or Databricks."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"laion-spark {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Build LAION-Aesthetics-style datasets with Spark."""


for _module in COMMAND_MODULES:
    _module.register(app)

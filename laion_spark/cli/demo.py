"""``laion-spark demo``: the whole pipeline on sample data, on the embedded engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import EngineOpt


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""

    @app.command()
    def demo(
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder for sample data, lake, KV files and report.")],
        rows: Annotated[int, typer.Option("--rows", min=100, help="Metadata rows per collection.")] = 20_000,
        seed: Annotated[int, typer.Option("--seed", min=0, help="Sample data seed.")] = 0,
        head: Annotated[
            str | None,
            typer.Option(
                "--head",
                help="Aesthetic head name or .pth path. Default: LAION's ViT-L/14 head if cached or downloadable, "
                "else the sample's synthetic head.",
            ),
        ] = None,
        engine: EngineOpt = "sail",
    ) -> None:
        """Generate sample data if missing and run every stage; print a summary and where each output is."""
        from ..pipeline.demo import run_demo

        result = run_demo(out, rows=rows, seed=seed, head=head, engine=engine, echo=typer.echo)
        typer.echo("")
        typer.echo(result.format())
        typer.echo(f"\nOpen the report: {result.outputs['report']}")

"""``laion-spark report``: the self-contained run report of a lake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import ConfigOpt, EngineChoice, LakeOpt, spark_command


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""

    @spark_command(app, "report")
    def report(
        lake_dir: LakeOpt,
        out: Annotated[
            Path | None, typer.Option("--out", help="Report folder (default: report/ beside the lake).")
        ] = None,
        config: ConfigOpt = None,
        log_scale: Annotated[bool, typer.Option("--log-scale", help="Log y axis on the distribution charts.")] = False,
        samples: Annotated[int, typer.Option("--samples", min=0, help="Sample captions per score bucket.")] = 3,
        *,
        engine: EngineChoice,
    ) -> None:
        """Write report/index.html (self-contained) and its PNG charts from the lake's tables."""
        from ..pipeline.config import load_pipeline_config
        from ..report import build_report

        target = out or lake_dir.resolve().parent / "report"
        pipeline = load_pipeline_config(config)
        with engine.open() as lake:
            page = build_report(
                lake, lake_dir, target, config=pipeline, log_scale=log_scale, samples_per_bucket=samples
            )
        typer.echo(f"report written to {page}")

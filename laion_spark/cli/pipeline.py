"""``laion-spark pipeline``: every configured stage in order from one YAML, resuming where a run stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..pipeline.params import STAGE_ORDER
from .options import EngineChoice, spark_command


def register(app: typer.Typer) -> None:
    """Add ``pipeline`` to ``app``."""

    @spark_command(app, "pipeline")
    def pipeline(
        config: Annotated[
            Path | None,
            typer.Option("--config", help="Pipeline YAML with a pipeline: section (default: the packaged one)."),
        ] = None,
        root: Annotated[
            Path | None,
            typer.Option("--root", help="Folder the config's relative paths start from (default: its root:)."),
        ] = None,
        from_stage: Annotated[
            str | None,
            typer.Option("--from", help=f"Start at this stage ({', '.join(STAGE_ORDER)}); earlier ones are not run."),
        ] = None,
        only: Annotated[
            str | None,
            typer.Option("--only", help="Comma-separated stages to run, in pipeline order."),
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Run the chosen stages even when they are complete.")
        ] = False,
        describe_only: Annotated[
            bool,
            typer.Option("--describe", help="Print each stage's command, resources, inputs and outputs; run nothing."),
        ] = False,
        *,
        engine: EngineChoice,
    ) -> None:
        """Run the configured stages in order: score, images, join, subsets, stats, aesthetic embeddings, KV,
        UMAP sample and UMAP, report.

        The whole YAML is validated first (errors name the key) and every input file must exist. A stage that
        is complete for the same inputs and parameters (recorded in LAKE/pipeline_stages) is skipped, so a
        rerun after a failure starts at the first stage that is not complete.
        """
        import dataclasses

        from ..pipeline.config import load_pipeline_config
        from ..pipeline.runner import describe, plan_stages, run_pipeline

        loaded = load_pipeline_config(config)
        if root is not None and loaded.pipeline is not None:
            loaded = dataclasses.replace(loaded, pipeline=dataclasses.replace(loaded.pipeline, root=str(root)))
        chosen = [name.strip() for name in only.split(",") if name.strip()] if only is not None else None
        plan_stages(loaded, from_stage, chosen)
        if describe_only:
            typer.echo(describe(loaded))
            return
        with engine.open() as lake:
            result = run_pipeline(lake, loaded, from_stage=from_stage, only=chosen, force=force, echo=typer.echo)
        typer.echo(result.format())

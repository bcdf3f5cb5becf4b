"""``laion-spark subsets``: the safety filter, then one ``subset_<name>`` table per configured threshold."""

from __future__ import annotations

import typer

from .options import ConfigOpt, EngineChoice, LakeOpt, spark_command


def register(app: typer.Typer) -> None:
    """Add ``subsets`` to ``app``."""

    @spark_command(app, "subsets")
    def subsets(lake_dir: LakeOpt, config: ConfigOpt = None, *, engine: EngineChoice) -> None:
        """Filter `joined` for safety and write one `subset_<name>` table per configured aesthetic threshold."""
        from ..pipeline.config import load_pipeline_config
        from ..subsets import build_subsets

        pipeline = load_pipeline_config(config)
        with engine.open() as lake:
            summaries = build_subsets(lake, lake_dir, pipeline)
        for summary in summaries:
            typer.echo(summary.format())
            files = summary.metrics.get("files")
            if pipeline.target_files and files is not None and files != pipeline.target_files:
                typer.echo(
                    f"  note: {files} files written, target {pipeline.target_files} "
                    f"({'empty partitions' if files < pipeline.target_files else 'the engine split partitions'})"
                )

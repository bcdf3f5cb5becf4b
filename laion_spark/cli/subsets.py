"""``subsets``, ``stats``, ``aesthetic-embeddings``, ``export-aesthetic-embeddings`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..aesthetic_embeddings import build_aesthetic_embeddings, export_aesthetic_embeddings
from ..cli_options import ConfOpt, EngineOpt, ProfileOpt, RemoteOpt, TableFormatOpt, input_errors, open_cli_session
from ..distribution import build_score_distribution, format_distribution
from ..heads import HeadFormatError, HeadNotFoundError, load_head
from ..pipeline_config import PipelineConfigError, default_config_path, load_pipeline_config
from ..report import build_report
from ..shards import ShardLayoutError
from ..subsets import SubsetError, build_subsets

LakeOpt = Annotated[
    Path, typer.Option("--lake", help="Lake folder holding the Delta tables (joined, aesthetic_tags ...).")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help=f"Pipeline config (default {default_config_path()}).")]
_EXPECTED = (
    PipelineConfigError,
    SubsetError,
    FileNotFoundError,
    ShardLayoutError,
    HeadNotFoundError,
    HeadFormatError,
    ValueError,
)


def register(app: typer.Typer) -> None:
    """Add the subset, distribution, aesthetic-embedding and report commands to ``app``."""

    @app.command("subsets")
    def subsets(
        lake_dir: LakeOpt,
        config: ConfigOpt = None,
        engine: EngineOpt = "sail",
        remote: RemoteOpt = None,
        profile: ProfileOpt = None,
        conf: ConfOpt = None,
        table_format: TableFormatOpt = None,
    ) -> None:
        """Filter `joined` for safety and write one `subset_<name>` table per configured aesthetic threshold."""
        with input_errors(*_EXPECTED):
            pipeline = load_pipeline_config(config)
            with open_cli_session(engine, remote, profile, conf, table_format) as lake:
                summaries = build_subsets(lake, lake_dir, pipeline)
        for summary in summaries:
            typer.echo(summary.format())
            files = summary.metrics.get("files")
            if pipeline.target_files and files is not None and files != pipeline.target_files:
                typer.echo(
                    f"  note: {files} files written, target {pipeline.target_files} "
                    f"({'empty partitions' if files < pipeline.target_files else 'the engine split partitions'})"
                )

    @app.command("stats")
    def stats(
        lake_dir: LakeOpt,
        engine: EngineOpt = "sail",
        remote: RemoteOpt = None,
        profile: ProfileOpt = None,
        conf: ConfOpt = None,
        table_format: TableFormatOpt = None,
    ) -> None:
        """Rewrite the `score_distribution` table from `aesthetic_tags` and print it in LAION's form."""
        with input_errors(*_EXPECTED), open_cli_session(engine, remote, profile, conf, table_format) as lake:
            table = build_score_distribution(lake, lake_dir)
        typer.echo(format_distribution(table) if not table.empty else "aesthetic_tags holds no rows")

    @app.command("aesthetic-embeddings")
    def aesthetic_embeddings(
        embeddings: Annotated[
            list[Path], typer.Option("--embeddings", help="parquet_npy embedding folder; repeatable.")
        ],
        head: Annotated[str, typer.Option("--head", help="Head name (laion-v1-l14 ...) or .pth path.")],
        lake_dir: LakeOpt,
        engine: EngineOpt = "sail",
        remote: RemoteOpt = None,
        profile: ProfileOpt = None,
        conf: ConfOpt = None,
        table_format: TableFormatOpt = None,
    ) -> None:
        """Average the normalised embeddings per integer score bucket 0..9 into `aesthetic_embeddings`."""
        with input_errors(*_EXPECTED):
            scorer = load_head(head)
            with open_cli_session(engine, remote, profile, conf, table_format) as lake:
                summary = build_aesthetic_embeddings(lake, embeddings, scorer, lake_dir)
        typer.echo(summary.format())

    @app.command("export-aesthetic-embeddings")
    def export_embeddings(
        lake_dir: LakeOpt,
        out: Annotated[Path, typer.Option("--out", help="Folder for rating0.npy ... rating9.npy.")],
        head: Annotated[
            str | None, typer.Option("--head", help="Head whose rows to export (needed when several).")
        ] = None,
        engine: EngineOpt = "sail",
        remote: RemoteOpt = None,
        profile: ProfileOpt = None,
        conf: ConfOpt = None,
        table_format: TableFormatOpt = None,
    ) -> None:
        """Write LAION-style `rating{N}.npy` files (float32, shape (1, d)) from `aesthetic_embeddings`."""
        with input_errors(*_EXPECTED), open_cli_session(engine, remote, profile, conf, table_format) as lake:
            written = export_aesthetic_embeddings(lake, lake_dir, out, head)
        typer.echo(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written.values())}")
        empty = [f"rating{b}" for b in range(10) if b not in written]
        if empty:
            typer.echo(f"  no rows in bucket(s) {', '.join(empty)}: not written")

    @app.command("report")
    def report(
        lake_dir: LakeOpt,
        out: Annotated[
            Path | None, typer.Option("--out", help="Report folder (default: report/ beside the lake).")
        ] = None,
        config: ConfigOpt = None,
        log_scale: Annotated[bool, typer.Option("--log-scale", help="Log y axis on the distribution charts.")] = False,
        samples: Annotated[int, typer.Option("--samples", min=0, help="Sample captions per score bucket.")] = 3,
        engine: EngineOpt = "sail",
        remote: RemoteOpt = None,
        profile: ProfileOpt = None,
        conf: ConfOpt = None,
        table_format: TableFormatOpt = None,
    ) -> None:
        """Write report/index.html (self-contained) and its PNG charts from the lake's tables."""
        target = out or lake_dir.resolve().parent / "report"
        with input_errors(*_EXPECTED):
            pipeline = load_pipeline_config(config)
            with open_cli_session(engine, remote, profile, conf, table_format) as lake:
                page = build_report(
                    lake, lake_dir, target, config=pipeline, log_scale=log_scale, samples_per_bucket=samples
                )
        typer.echo(f"report written to {page}")

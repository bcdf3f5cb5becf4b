"""``laion-spark join-tags``: LAION metadata LEFT JOIN tag tables on LAION's hash, into ``<lake>/joined``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..ingest.params import SWAP_CHOICES
from .options import EngineChoice, spark_command


def register(app: typer.Typer) -> None:
    """Add ``join-tags`` to ``app``."""

    @spark_command(app, "join-tags")
    def join_tags_command(
        metadata: Annotated[
            Path,
            typer.Option(help="LAION metadata: a parquet file or a folder of them (raw, or a -joined variant)."),
        ],
        collection: Annotated[str, typer.Option(help="Collection name, e.g. laion2B-en: the partition written.")],
        lake: Annotated[Path, typer.Option("--lake", help="Lake folder; writes DIR/joined and DIR/runs.")],
        aesthetic_tags: Annotated[
            Path | None,
            typer.Option(
                help="Aesthetic tags (hash + aesthetic): parquet, or a Delta table such as DIR/aesthetic_tags."
            ),
        ] = None,
        watermark_tags: Annotated[
            Path | None, typer.Option(help="Watermark tags (hash + pwatermark); parquet or Delta.")
        ] = None,
        safety_tags: Annotated[
            Path | None, typer.Option(help="Safety tags (hash + prediction, renamed punsafe); parquet or Delta.")
        ] = None,
        aesthetic_head: Annotated[
            str | None, typer.Option(help="Head to take from an aesthetic tag table holding several (its head column).")
        ] = None,
        swap_width_height: Annotated[
            str,
            typer.Option(
                help=f"{'|'.join(SWAP_CHOICES)}: fix raw LAION's swapped WIDTH/HEIGHT; auto = when no hash column."
            ),
        ] = "auto",
        verify_hash: Annotated[
            bool, typer.Option(help="For metadata with a hash column: recompute it and count mismatches.")
        ] = False,
        *,
        engine: EngineChoice,
    ) -> None:
        """Join a collection's metadata with its aesthetic/watermark/safety tags (LEFT joins: no row dropped).

        Inputs are checked from their parquet footers before any row is read. Tag
        tables are deduplicated by hash keeping the largest value. Re-running a
        collection replaces only its partition. The run summary is printed and
        appended to DIR/runs.
        """
        from ..ingest import join_tags

        with engine.open() as session:
            summary = join_tags(
                session,
                metadata,
                collection,
                lake,
                aesthetic_tags=aesthetic_tags,
                watermark_tags=watermark_tags,
                safety_tags=safety_tags,
                aesthetic_head=aesthetic_head,
                swap_width_height=swap_width_height,
                verify_hash=verify_hash,
            )
        typer.echo(summary.format())

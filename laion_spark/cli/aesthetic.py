"""``score-embeddings``, ``stats``, ``aesthetic-embeddings`` and ``export-aesthetic-embeddings``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..aesthetic.params import HEADS, SHARDS_PER_COMMIT
from .options import EngineChoice, LakeOpt, spark_command

HeadOpt = Annotated[str, typer.Option("--head", help=f"Head name ({', '.join(HEADS)}) or path of a .pth state dict.")]


def register(app: typer.Typer) -> None:
    """Add the aesthetic-scoring commands to ``app``."""

    @spark_command(app, "score-embeddings")
    def score_embeddings_command(
        embeddings: Annotated[
            Path,
            typer.Option(
                "--embeddings",
                help="Folder in LAION's parquet_npy layout: img_emb/img_emb_XXXX.npy + metadata/metadata_XXXX.parquet.",
            ),
        ],
        head: HeadOpt,
        lake_dir: Annotated[Path, typer.Option("--lake", help="Lake folder; writes aesthetic_tags there.")],
        collection: Annotated[
            str | None, typer.Option("--collection", help="Collection name; default: the embeddings folder's name.")
        ] = None,
        overwrite: Annotated[
            bool,
            typer.Option(
                "--overwrite", help="Rescore every shard and replace this head + collection's rows (else resume)."
            ),
        ] = False,
        shards_per_commit: Annotated[
            int,
            typer.Option(
                "--shards-per-commit", min=1, help="Shards per table commit: a crash loses at most one such group."
            ),
        ] = SHARDS_PER_COMMIT,
        skip_refused: Annotated[
            bool,
            typer.Option(
                "--skip-refused",
                help="Score the good shards when some are refused (counted as rows_refused) instead of refusing the run.",
            ),
        ] = False,
        *,
        engine: EngineChoice,
    ) -> None:
        """Score precomputed CLIP image embeddings into LAKE/aesthetic_tags (hash, aesthetic, collection, shard, head).

        One Spark task per shard memory-maps its .npy, scores it with the head and
        hashes url + caption (LAION's hash). Shards already scored with the same head
        are skipped, so rerunning after a crash completes the run with each shard
        once. Rows with NaN/inf or all-zero embeddings go to
        LAKE/aesthetic_tags_rejected with their reason. A shard whose .npy and
        metadata row counts differ, or whose width is not the head's, is refused
        before anything is written (exit 2), unless --skip-refused.
        """
        from ..aesthetic import load_head, score_embeddings

        scorer = load_head(head)
        with engine.open() as lake:
            summary = score_embeddings(
                lake,
                embeddings,
                scorer,
                lake_dir,
                collection=collection,
                overwrite=overwrite,
                shards_per_commit=shards_per_commit,
                skip_refused=skip_refused,
            )
        typer.echo(summary.format())
        for refused in summary.refused:
            typer.echo(f"warning: skipped refused shard {refused.index} ({refused.npy}): {refused.reason}", err=True)

    @spark_command(app, "stats")
    def stats(lake_dir: LakeOpt, *, engine: EngineChoice) -> None:
        """Rewrite the `score_distribution` table from `aesthetic_tags` and print it in LAION's form."""
        from ..aesthetic import build_score_distribution, format_distribution

        with engine.open() as lake:
            table = build_score_distribution(lake, lake_dir)
        typer.echo(format_distribution(table) if not table.empty else "aesthetic_tags holds no rows")

    @spark_command(app, "aesthetic-embeddings")
    def aesthetic_embeddings(
        embeddings: Annotated[
            list[Path], typer.Option("--embeddings", help="parquet_npy embedding folder; repeatable.")
        ],
        head: HeadOpt,
        lake_dir: LakeOpt,
        *,
        engine: EngineChoice,
    ) -> None:
        """Average the normalised embeddings per integer score bucket 0..9 into `aesthetic_embeddings`."""
        from ..aesthetic import build_aesthetic_embeddings, load_head

        scorer = load_head(head)
        with engine.open() as lake:
            summary = build_aesthetic_embeddings(lake, embeddings, scorer, lake_dir)
        typer.echo(summary.format())

    @spark_command(app, "export-aesthetic-embeddings")
    def export_embeddings(
        lake_dir: LakeOpt,
        out: Annotated[Path, typer.Option("--out", help="Folder for rating0.npy ... rating9.npy.")],
        head: Annotated[
            str | None, typer.Option("--head", help="Head whose rows to export (needed when several).")
        ] = None,
        *,
        engine: EngineChoice,
    ) -> None:
        """Write LAION-style `rating{N}.npy` files (float32, shape (1, d)) from `aesthetic_embeddings`."""
        from ..aesthetic import export_aesthetic_embeddings

        with engine.open() as lake:
            written = export_aesthetic_embeddings(lake, lake_dir, out, head)
        typer.echo(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written.values())}")
        empty = [f"rating{b}" for b in range(10) if b not in written]
        if empty:
            typer.echo(f"  no rows in bucket(s) {', '.join(empty)}: not written")

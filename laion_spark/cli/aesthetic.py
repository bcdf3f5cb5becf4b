"""``laion-spark score-embeddings``: score CLIP embedding shards with a LAION aesthetic head."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli_options import ConfOpt, EngineOpt, ProfileOpt, RemoteOpt, TableFormatOpt, input_errors, open_cli_session
from ..heads import HEADS, HeadFormatError, HeadNotFoundError
from ..score import SHARDS_PER_COMMIT, score_embeddings
from ..shards import ShardLayoutError


def register(app: typer.Typer) -> None:
    """Add ``score-embeddings`` to ``app``."""

    @app.command("score-embeddings")
    def score_embeddings_command(
        embeddings: Annotated[
            Path,
            typer.Option(
                "--embeddings",
                exists=True,
                file_okay=False,
                help="Folder in LAION's parquet_npy layout: img_emb/img_emb_XXXX.npy + metadata/metadata_XXXX.parquet.",
            ),
        ],
        head: Annotated[
            str, typer.Option("--head", help=f"Head name ({', '.join(HEADS)}) or path of a .pth state dict.")
        ],
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
        engine: EngineOpt = "sail",
        remote: RemoteOpt = None,
        profile: ProfileOpt = None,
        conf: ConfOpt = None,
        table_format: TableFormatOpt = None,
    ) -> None:
        """Score precomputed CLIP image embeddings into LAKE/aesthetic_tags (hash, aesthetic, collection, shard, head).

        One Spark task per shard memory-maps its .npy, scores it with the head and
        hashes url + caption (LAION's hash). Shards already scored with the same head
        are skipped, so rerunning after a crash completes the run with each shard
        once. Rows with NaN/inf or all-zero embeddings go to
        LAKE/aesthetic_tags_rejected with their reason. A shard whose .npy and
        metadata row counts differ, or whose width is not the head's, is refused:
        the good shards are scored, then the command names each refused shard and
        its reason and exits with status 1.
        """
        with (
            input_errors(HeadNotFoundError, HeadFormatError, ShardLayoutError),
            open_cli_session(engine, remote, profile, conf, table_format) as lake,
        ):
            summary = score_embeddings(
                lake,
                embeddings,
                head,
                lake_dir,
                collection=collection,
                overwrite=overwrite,
                shards_per_commit=shards_per_commit,
            )
        typer.echo(summary.format())
        if summary.refused:
            for refused in summary.refused:
                typer.echo(f"error: refused shard {refused.index} ({refused.npy}): {refused.reason}", err=True)
            raise typer.Exit(1)

"""``score-images`` and ``embed-text``: CLIP inference in Spark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..aesthetic.params import HEADS
from ..clip.params import (
    DECODE_TIMEOUT_S,
    IMAGE_BATCH,
    TARS_PER_COMMIT,
    TEXT_BATCH,
    TINY_MODEL,
    TINY_TEXT_WIDTH,
)
from .options import EngineChoice, spark_command

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help=(
            "open_clip architecture and weights: ARCH:TAG (e.g. ViT-L-14:openai, downloaded once into open_clip's "
            f"cache), ARCH:/path/to/checkpoint.pt, ARCH:random, or {TINY_MODEL} (tiny, random weights: tests and demo)."
        ),
    ),
]


def register(app: typer.Typer) -> None:
    """Add the CLIP commands to ``app``."""

    @spark_command(app, "score-images")
    def score_images_command(
        shards: Annotated[str, typer.Option("--shards", help="Glob of webdataset tars, e.g. 'shards/*.tar'.")],
        model: ModelOpt,
        head: Annotated[
            str,
            typer.Option("--head", help=f"Head name ({', '.join(HEADS)}) or .pth path; its width must be the model's."),
        ],
        lake_dir: Annotated[
            Path, typer.Option("--lake", help="Lake folder; writes image_aesthetic_tags, image_errors, image_tars.")
        ],
        write_embeddings: Annotated[
            Path | None,
            typer.Option(
                "--write-embeddings", help="Folder for the embeddings: img_emb/img_emb_XXXX.npy + metadata/ per tar."
            ),
        ] = None,
        collection: Annotated[
            str | None, typer.Option("--collection", help="Collection name; default: the tars' folder name.")
        ] = None,
        batch_size: Annotated[
            int, typer.Option("--batch-size", min=1, help="Images per model forward (halved on CUDA out of memory).")
        ] = IMAGE_BATCH,
        tars_per_commit: Annotated[
            int, typer.Option("--tars-per-commit", min=1, help="Tars per lake commit: a crash loses at most one group.")
        ] = TARS_PER_COMMIT,
        threads: Annotated[
            int, typer.Option("--threads", min=0, help="Decoder threads per task (0: one per core, at most 16).")
        ] = 0,
        decode_timeout: Annotated[
            float,
            typer.Option("--decode-timeout", min=0.001, help="Seconds an image may take to decode before it fails."),
        ] = DECODE_TIMEOUT_S,
        *,
        engine: EngineChoice,
    ) -> None:
        """Embed the images of webdataset tars with CLIP and score them with an aesthetic head.

        One Spark task per tar reads it, decodes its images (threads, or the GPU's JPEG decoder) with the
        model's preprocessing, embeds them on the task's GPU (else the CPU) and scores them. Scores go to
        LAKE/image_aesthetic_tags (hash of url + caption, with the model and source=images), samples that
        cannot be embedded (truncated, empty or undecodable image, missing caption, unknown member) to
        LAKE/image_errors with their error; --write-embeddings also writes the parquet_npy shards that
        score-embeddings reads. Rerunning after a crash skips finished tars: every tar is scored once.
        """
        from ..aesthetic import load_head
        from ..clip import ModelSpec, score_images

        spec = ModelSpec.parse(model)
        scorer = load_head(head)
        with engine.open() as lake:
            summary = score_images(
                lake,
                shards,
                spec,
                scorer,
                lake_dir,
                write_embeddings=write_embeddings,
                collection=collection,
                batch_size=batch_size,
                tars_per_commit=tars_per_commit,
                threads=threads,
                decode_timeout=decode_timeout,
            )
        typer.echo(summary.format())

    @spark_command(app, "embed-text")
    def embed_text_command(
        table: Annotated[Path, typer.Option("--table", help="Lake table holding the captions.")],
        column: Annotated[str, typer.Option("--column", help="Caption column, e.g. TEXT.")],
        model: ModelOpt,
        out: Annotated[Path, typer.Option("--out", help="Output table: the input's columns plus the embedding.")],
        pooled: Annotated[
            bool,
            typer.Option(
                "--pooled/--projected",
                help=(
                    "--pooled: ln_final at the end-of-text token before the projection (CLIPTextModel.pooler_output, "
                    f"as the published UMAP pipeline used; {TINY_TEXT_WIDTH}-d for {TINY_MODEL}, 512-d for ViT-B-32); "
                    "--projected: the CLIP text embedding, L2-normalised."
                ),
            ),
        ] = True,
        batch_size: Annotated[
            int, typer.Option("--batch-size", min=1, help="Captions per forward, each padded to its longest.")
        ] = TEXT_BATCH,
        output: Annotated[str, typer.Option("--output-column", help="Name of the embedding column.")] = "embedding",
        *,
        engine: EngineChoice,
    ) -> None:
        """Embed a caption column with CLIP's text tower into a new table (array<float>, null for a null caption).

        Captions are grouped by token count inside each partition and every batch is padded to its
        longest caption only (equal to the full 77-token encoding within 1e-5 in fp32); rows keep their
        order. The run is recorded in the runs table of the lake holding --table.
        """
        from ..clip import ModelSpec, embed_text

        spec = ModelSpec.parse(model)
        with engine.open() as lake:
            summary = embed_text(
                lake,
                table,
                column,
                spec,
                out,
                mode="pooled" if pooled else "projected",
                batch_size=batch_size,
                output=output,
            )
        typer.echo(summary.format())

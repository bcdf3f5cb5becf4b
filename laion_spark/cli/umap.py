"""``sample-for-umap`` and ``umap``: the hand-off of a subset sample to the UMAP job, and the job itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..umap.params import (
    BACKENDS,
    DIM,
    EPOCHS,
    MODE,
    MODES,
    NEGATIVE_SAMPLE_RATE,
    NEIGHBORS,
    SEED,
    parse_neighbors,
)
from .options import EngineChoice, LakeOpt, spark_command


def register(app: typer.Typer) -> None:
    """Add ``sample-for-umap`` and ``umap`` to ``app``."""

    @spark_command(app, "sample-for-umap")
    def sample_for_umap_command(
        lake_dir: LakeOpt,
        subset: Annotated[str, typer.Option("--subset", help="Subset name (aesthetics_6plus) or its table.")],
        rows: Annotated[int, typer.Option("--rows", "-n", help="Rows to sample (all when the subset has fewer).")],
        seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of the hash that picks the rows.")] = SEED,
        *,
        engine: EngineChoice,
    ) -> None:
        """Write LAKE/umap_sample: ROWS rows of subset_<SUBSET> chosen by xxhash64(hash, SEED), the same on every engine."""
        from ..umap import sample_for_umap

        with engine.open() as lake:
            summary = sample_for_umap(lake, lake_dir, subset, rows, seed)
        typer.echo(summary.format())

    @spark_command(app, "umap")
    def umap_command(
        lake_dir: LakeOpt,
        model: Annotated[
            str,
            typer.Option(
                "--model", help="CLIP model: ARCH:TAG (ViT-B-32:openai), ARCH:/path/ckpt.pt or laion-spark-tiny."
            ),
        ],
        neighbors: Annotated[
            str, typer.Option("--neighbors", help="n_neighbors values, one layout each (comma-separated).")
        ] = ",".join(str(n) for n in NEIGHBORS),
        epochs: Annotated[int, typer.Option("--epochs", help="UMAP optimisation epochs per layout.")] = EPOCHS,
        negative_sample_rate: Annotated[
            int, typer.Option("--negative-sample-rate", help="Negative samples per positive edge.")
        ] = NEGATIVE_SAMPLE_RATE,
        dim: Annotated[int, typer.Option("--dim", help="Width of the Gaussian random projection.")] = DIM,
        seed: Annotated[
            int, typer.Option("--seed", "-s", help="Seed of the projection, the fit rows and UMAP.")
        ] = SEED,
        fit_rows: Annotated[
            int | None,
            typer.Option(
                "--fit-rows", help="Fit on this many rows and transform the rest in Spark tasks (default: fit on all)."
            ),
        ] = None,
        mode: Annotated[
            str, typer.Option("--mode", help=f"Text embedding: {' or '.join(MODES)} (projected is L2-normalised).")
        ] = MODE,
        renders: Annotated[
            Path | None,
            typer.Option(
                "--renders", help="Folder for the PNG renders and umap.json (default: umap/ beside the lake)."
            ),
        ] = None,
        backend: Annotated[
            str, typer.Option("--backend", help=f"UMAP backend: {', '.join(BACKENDS)} (auto: cuML where it imports).")
        ] = "auto",
        *,
        engine: EngineChoice,
    ) -> None:
        """Lay LAKE/umap_sample out in 2-D per n_neighbors into LAKE/umap, with a datashader PNG per layout.

        Captions are embedded with CLIP (pooled text output, as the published
        laion-aesthetics-12m-umap), projected to --dim in the Spark tasks with a
        seeded Gaussian random projection, and laid out with cuML UMAP where it
        imports, else umap-learn (a warning says so). The backend and its exact
        parameters are logged, stored in runs and written to umap.json.
        """
        from ..umap import build_umap

        values = parse_neighbors(neighbors)
        with engine.open() as lake:
            summary = build_umap(
                lake,
                lake_dir,
                model,
                neighbors=values,
                epochs=epochs,
                negative_sample_rate=negative_sample_rate,
                dim=dim,
                seed=seed,
                fit_rows=fit_rows,
                mode=mode,
                renders=renders,
                backend=backend,
            )
        typer.echo(summary.format())

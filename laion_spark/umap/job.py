"""``umap``: CLIP text embeddings of ``umap_sample`` -> 64-d random projection -> UMAP per n_neighbors -> ``umap``.

Steps, each logged (stage, rows, epochs) to ``laion_spark.umap``:

1. read ``umap_sample`` and key its rows by ``(hash, occurrence of that hash)``,
   so that duplicate rows keep one coordinate pair each;
2. choose the fit rows (all rows, or ``fit_rows`` of them by a seeded hash),
   embed their captions (a null caption is embedded as the empty caption and
   counted), project to ``dim`` in the tasks and collect only the float32 features;
3. fit one UMAP per n_neighbors with the backend (cuML or umap-learn) and send
   the fit rows' coordinates back as a small keyed table;
4. embed, project and transform the other rows in Spark partitions, the tasks
   loading the fitted models from files under the lake (``_umap_models/``,
   :mod:`.models`);
5. overwrite ``umap`` (LAION's columns, then ``x_nn<k>, y_nn<k>`` per
   n_neighbors), check that it holds every sample row once, render a PNG per
   n_neighbors and write ``umap.json`` (the backend and its exact parameters)
   beside the PNGs, and record the run.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ..errors import InvariantError
from ..lake.columns import require_columns
from ..lake.finite import non_finite
from ..lake.layout import is_local, lake_table
from ..lake.runs import RunSummary, record_run
from ..lake.tables import read_table, write_table
from ..subsets.params import PUBLISHED_KINDS
from .backends import Backend, FittedLayout, UmapParams, select_backend
from .embed import ClipTextEmbedder, TextEmbedder
from .errors import UmapError
from .fit import coordinates_frame, coordinates_table, fit_layouts
from .models import prune_models, save_models, transform_with_files
from .params import PARTITION_ROWS, SAMPLE_TABLE, UMAP_TABLE, Umap, coordinate_columns, umap_columns
from .projection import gaussian_projection, project_frame, rows_matrix
from .render import render_layouts
from .sample import first_by_rank
from .tables import check_columns_unchanged

if TYPE_CHECKING:
    from ..engine.session import LakeSession

JOB = "umap"
_log = logging.getLogger("laion_spark.umap")
_OCCURRENCE, _CAPTION, _EMBEDDING, _FEATURES = "_umap_occurrence", "_umap_caption", "_umap_embedding", "_umap_features"
#: The key of a sample row: its hash and which occurrence of that hash it is.
ROW_KEY = ("hash", _OCCURRENCE)
MANIFEST = "umap.json"


def layout_params(stage: Umap) -> list[UmapParams]:
    """One UMAP parameter set per n_neighbors of ``stage``, in order."""
    return [UmapParams(n, stage.epochs, stage.negative_sample_rate, stage.seed) for n in stage.neighbors]


def partitions(rows: int) -> int:
    """Spark partitions for ``rows`` rows of embedding, projection and transform work."""
    return max(1, math.ceil(rows / PARTITION_ROWS))


def with_row_keys(sample: DataFrame) -> DataFrame:
    """``sample`` with the occurrence number of each row's hash (1, 2 ... ordered by every other column).

    Rows with the same hash and the same values are interchangeable, so the keys
    name the same rows however often the plan is evaluated.
    """
    order = [c for c in sample.columns if c != "hash"]
    return sample.withColumn(_OCCURRENCE, F.row_number().over(Window.partitionBy("hash").orderBy(*order)))


def features_frame(embedder: TextEmbedder, rows: DataFrame, matrix, count: int) -> DataFrame:
    """``rows`` with the projected caption embedding ``_umap_features`` (float32, ``matrix.shape[1]`` wide)."""
    captioned = rows.withColumn(_CAPTION, F.coalesce(F.col("TEXT"), F.lit(""))).repartition(partitions(count))
    embedded = embedder.embed(captioned, _CAPTION, _EMBEDDING).drop(_CAPTION)
    return project_frame(embedded, _EMBEDDING, matrix, _FEATURES)


def renders_folder(lake_dir: str | Path, renders: str | Path | None) -> Path | None:
    """Where the PNGs go: ``renders``, else ``umap/`` beside a local lake (``None`` for a lake on a URI).

    Raises :class:`UmapError` for a path that exists and is not a folder.
    """
    folder = Path(renders) if renders is not None else None
    if folder is None and is_local(lake_dir):
        folder = Path(lake_dir).expanduser().resolve().parent / "umap"
    if folder is not None and folder.exists() and not folder.is_dir():
        raise UmapError(f"--renders {folder}: exists and is not a folder")
    return folder


def _sample_counts(sample: DataFrame) -> tuple[int, int, int]:
    row = sample.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.col("TEXT").isNull(), 1).otherwise(0)).alias("null_text"),
        F.sum(F.when(F.col("hash").isNull(), 1).otherwise(0)).alias("null_hash"),
    ).first()
    return int(row["rows"]), int(row["null_text"] or 0), int(row["null_hash"] or 0)


def _fit_set(keyed: DataFrame, rows: int, fit_rows: int, seed: int) -> DataFrame:
    return keyed if fit_rows >= rows else first_by_rank(keyed, fit_rows, seed)[0]


def layout_sample(lake: LakeSession, plan: Umap, embedder: TextEmbedder, backend: Backend | str) -> RunSummary:
    """Steps 1-5 of the module docstring with any :class:`TextEmbedder` (``plan.model`` and ``plan.mode`` are the
    embedder's business); see :func:`build_umap`.

    ``backend`` is a :class:`Backend` or a name for :func:`select_backend`, chosen once the input is checked.
    """
    lake_dir = plan.lake
    source, target = lake_table(lake_dir, SAMPLE_TABLE), lake_table(lake_dir, UMAP_TABLE)
    sample = read_table(lake, source)
    require_columns(sample.schema, PUBLISHED_KINDS, source)
    columns = umap_columns(plan.neighbors)
    check_columns_unchanged(lake, target, columns)
    folder = renders_folder(lake_dir, plan.renders)
    width = embedder.width()
    matrix = gaussian_projection(width, plan.dim, plan.seed)
    rows, null_text, null_hash = _sample_counts(sample)
    if null_hash:
        raise UmapError(f"{source}: {null_hash} rows without a hash; every sample row needs LAION's hash")
    if rows <= max(plan.neighbors):
        raise UmapError(f"{source}: {rows} rows; UMAP with n_neighbors={max(plan.neighbors)} needs more")
    fit_rows = rows if plan.fit_rows is None else min(plan.fit_rows, rows)
    backend = select_backend(backend) if isinstance(backend, str) else backend
    summary = RunSummary(job=JOB, collection="*", target=UMAP_TABLE)

    keyed = with_row_keys(sample)
    _log.info(
        "umap: embedding (%s), projecting %d -> %d and collecting %d fit rows", embedder.name, width, plan.dim, fit_rows
    )
    fit_part = features_frame(
        embedder, _fit_set(keyed, rows, fit_rows, plan.seed).select(*ROW_KEY, "TEXT"), matrix, fit_rows
    )
    collected = fit_part.toArrow()
    features, _ = rows_matrix(collected.column(_FEATURES), plan.dim)
    _log.info("umap: %d x %d float32 features collected (%.1f MB)", *features.shape, features.nbytes / 2**20)
    layouts = fit_layouts(features, layout_params(plan), backend)
    coords = coordinates_frame(lake, coordinates_table(collected.select(list(ROW_KEY)), layouts))
    parts = [keyed.join(coords, list(ROW_KEY), "inner")]
    files = []
    if fit_rows < rows:
        rest = keyed.join(F.broadcast(coords.select(*ROW_KEY)), list(ROW_KEY), "left_anti")
        files = save_models(lake_dir, layouts, backend, fit_rows)  # the tasks load them by path
        _log.info("umap: transforming %d rows in %d partitions", rows - fit_rows, partitions(rows - fit_rows))
        rest_features = features_frame(embedder, rest, matrix, rows - fit_rows)
        parts.append(transform_with_files(rest_features, files, backend, layouts[0].width, _FEATURES))
    out = parts[0].select(*columns)
    for part in parts[1:]:
        out = out.unionByName(part.select(*columns))
    write_table(lake, out, target, mode="overwrite")
    written = read_table(lake, target).count()
    summary.metrics = _metrics(written, rows, fit_rows, null_text, width, plan, backend, layouts)
    if written != rows:
        raise InvariantError(f"{target}: {written} rows written for {rows} sample rows", summary)
    prune_models(lake_dir, files)  # the models of earlier runs go; this run's stay beside its table
    _log.info("umap: wrote %d rows to %s", written, target)
    if folder is not None:
        points = read_table(lake, target).select("AESTHETIC_SCORE", *coordinate_columns(plan.neighbors)).toPandas()
        summary.metrics["renders"] = len(render_layouts(points, plan.neighbors, folder))
        # drawn unscored, never with the top colour (laion_spark.lake.finite)
        unscored = read_table(lake, target).where(non_finite(F.col("AESTHETIC_SCORE"))).count()
        summary.metrics["rows_non_finite_score"] = unscored
        _write_manifest(folder / MANIFEST, summary, embedder, plan, width, backend, layouts)
    record_run(lake, lake_dir, summary)
    return summary


def _metrics(
    written: int,
    rows: int,
    fit_rows: int,
    null_text: int,
    width: int,
    plan: Umap,
    backend: Backend,
    layouts: Sequence[FittedLayout],
) -> dict[str, int]:
    metrics = {
        "rows": written,
        "sample_rows": rows,
        "fit_rows": fit_rows,
        "transformed_rows": rows - fit_rows,
        "null_captions": null_text,
        "input_dim": width,
        "dim": plan.dim,
        "epochs": plan.epochs,
        "negative_sample_rate": plan.negative_sample_rate,
        "seed": plan.seed,
        f"backend_{backend.name.replace('-', '_')}": 1,
    }
    metrics.update({f"fit_ms_nn{layout.n_neighbors}": round(layout.seconds * 1000) for layout in layouts})
    return metrics


def _write_manifest(
    path: Path,
    summary: RunSummary,
    embedder: TextEmbedder,
    plan: Umap,
    width: int,
    backend: Backend,
    layouts: Sequence[FittedLayout],
) -> None:
    """``umap.json``: the run's model, projection, backend and each fit's exact keywords."""
    manifest = {
        "run_id": summary.run_id,
        "model": embedder.name,
        "projection": {
            "kind": "gaussian N(0, 1/dim), scikit-learn GaussianRandomProjection",
            "from": width,
            "to": plan.dim,
            "seed": plan.seed,
        },
        "backend": {"name": backend.name, "version": backend.version()},
        "rows": summary.metrics["rows"],
        "fit_rows": summary.metrics["fit_rows"],
        "fits": [
            {
                "n_neighbors": layout.n_neighbors,
                **layout.options.record(),
                "seconds": round(layout.seconds, 3),
            }
            for layout in layouts
        ],
    }
    path.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")


def build_umap(lake: LakeSession, stage: Umap) -> RunSummary:
    """Lay ``<stage.lake>/umap_sample`` out in 2-D per n_neighbors into ``<stage.lake>/umap``; PNGs into
    ``stage.renders`` (:class:`~laion_spark.umap.params.Umap` lists the parameters).

    ``model`` is the CLIP model (``ViT-B-32:openai`` ...), ``mode`` ``pooled`` (as published) or
    ``projected``. ``fit_rows`` fits on that many rows (chosen by a seeded hash) and transforms the
    others in Spark tasks; ``None`` fits on every row. ``renders`` defaults to ``umap/`` beside a local
    lake. ``backend`` is ``auto`` (cuML where it imports, else umap-learn, with a warning), ``cuml`` or
    ``umap-learn``. Returns the recorded run summary.

    Raises :class:`UmapError` (or another :class:`~laion_spark.errors.InputError`: a missing table or
    column, a bad model spec) before anything is written,
    :class:`~laion_spark.umap.BackendUnavailableError` when no backend imports and
    :class:`~laion_spark.errors.InvariantError` when ``umap`` does not end up with every sample row once.
    """
    return layout_sample(lake, stage, ClipTextEmbedder.of(stage.model, stage.mode), stage.backend)

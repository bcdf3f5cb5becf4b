"""Fit one UMAP per n_neighbors on the driver, then transform the other rows in Spark tasks.

The fit rows' 64-d features are collected (the only rows that reach the UMAP
process); each fit's coordinates go back to Spark as a small key + coordinates
table. Rows outside the fit set are transformed by a ``mapInArrow`` function
whose closure carries the backend and the pickled models (no broadcast, no RDD:
this runs over Spark Connect too); each task unpickles its own copy, so tasks
running side by side in one process (Sail) never share a model.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import FloatType, StructField, StructType

from ..engine.factory import LakeSession
from .backends import Backend, FittedLayout, UmapParams
from .errors import UmapError
from .params import COORDINATE_CHUNK_ROWS, MODEL_BYTES_LIMIT, MODEL_BYTES_PER_FIT_ROW, coordinate_columns
from .projection import rows_matrix

_log = logging.getLogger("laion_spark.umap")
#: Rows per call of a model's ``transform`` inside a task.
TRANSFORM_CHUNK_ROWS = 65_536


def check_model_bytes(fit_rows: int, layouts: int, measured: int | None = None) -> None:
    """Refuse a transform whose models (``measured`` bytes, else estimated) exceed :data:`MODEL_BYTES_LIMIT`.

    Raises :class:`UmapError` naming the size and the most fit rows that fit.
    """
    size = measured if measured is not None else fit_rows * layouts * MODEL_BYTES_PER_FIT_ROW
    if size > MODEL_BYTES_LIMIT:
        most = int(MODEL_BYTES_LIMIT / max(size / fit_rows, 1))
        kind = "take" if measured is not None else "would take about"
        raise UmapError(
            f"--fit-rows {fit_rows}: {layouts} fitted model(s) {kind} {size / 2**20:.0f} MiB, more than the "
            f"{MODEL_BYTES_LIMIT / 2**20:.0f} MiB a Spark Connect plan carries to the tasks; use at most about "
            f"{most:,} fit rows, or fit on all rows"
        )


def fit_layouts(features: np.ndarray, params: Sequence[UmapParams], backend: Backend) -> list[FittedLayout]:
    """One fit of ``features`` per parameter set, in order."""
    return [backend.fit(features, p) for p in params]


def coordinates_table(keys: pa.Table, layouts: Sequence[FittedLayout]) -> pa.Table:
    """``keys`` (the fit rows' key columns) with one ``x_nn<k>, y_nn<k>`` float32 pair per layout."""
    columns = dict(zip(keys.column_names, keys.columns, strict=True))
    for layout in layouts:
        x, y = coordinate_columns([layout.n_neighbors])
        columns[x] = pa.array(layout.embedding[:, 0], pa.float32())
        columns[y] = pa.array(layout.embedding[:, 1], pa.float32())
    return pa.table(columns)


def coordinates_frame(lake: LakeSession, table: pa.Table, chunk_rows: int = COORDINATE_CHUNK_ROWS) -> DataFrame:
    """``table`` as a DataFrame, sent in ``chunk_rows`` pieces (each one local relation of the plan)."""
    pieces = [
        lake.spark.createDataFrame(table.slice(at, chunk_rows).to_pandas())
        for at in range(0, max(table.num_rows, 1), chunk_rows)
    ]
    frame = pieces[0]
    for piece in pieces[1:]:
        frame = frame.unionByName(piece)
    return frame


def transformed_schema(schema: StructType, features: str, neighbors: Sequence[int]) -> StructType:
    """``schema`` without ``features``, with the float coordinate pair of each n_neighbors appended."""
    kept = [f for f in schema.fields if f.name != features]
    return StructType([*kept, *(StructField(c, FloatType(), True) for c in coordinate_columns(list(neighbors)))])


def _transform_batches(
    backend: Backend, models: list[tuple[int, bytes]], features: str, width: int
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``mapInArrow`` function: a partition's ``features`` -> its coordinates under every fitted model."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        held = [b for b in batches if b.num_rows]
        if not held:
            return
        table = pa.Table.from_batches(held)
        rows, _ = rows_matrix(table.column(features), width)
        kept = table.drop_columns([features])
        for n_neighbors, blob in models:
            model = pickle.loads(blob)
            coords = np.concatenate(
                [
                    backend.transform(model, rows[at : at + TRANSFORM_CHUNK_ROWS])
                    for at in range(0, len(rows), TRANSFORM_CHUNK_ROWS)
                ]
            )
            x, y = coordinate_columns([n_neighbors])
            kept = kept.append_column(x, pa.array(coords[:, 0], pa.float32()))
            kept = kept.append_column(y, pa.array(coords[:, 1], pa.float32()))
        _log.info("umap transform: %d rows of one partition done", len(rows))
        yield from kept.to_batches(max_chunksize=TRANSFORM_CHUNK_ROWS)

    return run


def transform_frame(
    frame: DataFrame, layouts: Sequence[FittedLayout], backend: Backend, features: str = "features"
) -> DataFrame:
    """``frame`` with ``features`` (non-null 64-d rows) replaced by each layout's transformed coordinates.

    The models travel pickled inside the task closure; their size is logged, and
    :func:`check_model_bytes` refuses models too large for one plan.
    """
    models = [(layout.n_neighbors, layout.model) for layout in layouts]
    check_model_bytes(len(layouts[0].embedding), len(models), sum(len(blob) for _, blob in models))
    for n_neighbors, blob in models:
        _log.info("umap nn%d: model of %.1f MB shipped to the tasks", n_neighbors, len(blob) / 2**20)
    width = layouts[0].width
    schema = transformed_schema(frame.schema, features, [n for n, _ in models])
    return frame.mapInArrow(_transform_batches(backend, models, features, width), schema)

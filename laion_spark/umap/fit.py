"""Fit one UMAP per n_neighbors on the driver; the fit rows' coordinates back to Spark.

The fit rows' 64-d features are collected (the only rows that reach the UMAP
process); each fit's coordinates go back to Spark as a small key + coordinates
table. Rows outside the fit set are transformed in Spark tasks that load the
fitted models from files under the lake (:mod:`.models`: no broadcast, no RDD,
nothing large in the plan, so this runs over Spark Connect at any fit size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.types import FloatType, StructField, StructType

from .backends import Backend, FittedLayout, UmapParams
from .params import COORDINATE_CHUNK_ROWS, coordinate_columns

if TYPE_CHECKING:
    from ..engine.session import LakeSession


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

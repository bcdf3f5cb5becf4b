"""The seeded Gaussian random projection (to 64-d), computed in Spark tasks one Arrow batch at a time.

The matrix follows scikit-learn's ``GaussianRandomProjection(n_components,
random_state=seed)``: entries drawn from N(0, 1/n_components) by
``numpy.random.RandomState(seed)`` in the shape ``(n_components, n_features)``;
``x @ components.T`` projects a row. It is built once on the driver and shipped
inside the ``mapInArrow`` closure, so only ``n_components`` float32 values per
row leave the tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

from .errors import UmapError

#: Seeds numpy's legacy ``RandomState`` accepts (the one scikit-learn uses for an integer seed).
SEED_RANGE = (0, 2**32 - 1)


def gaussian_projection(n_features: int, n_components: int, seed: int) -> np.ndarray:
    """The ``(n_features, n_components)`` float32 matrix ``components_.T`` of scikit-learn's projection.

    Raises :class:`UmapError` for a seed outside :data:`SEED_RANGE` or a non-positive size.
    """
    if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise UmapError(f"--seed {seed}: must lie in {SEED_RANGE[0]} .. {SEED_RANGE[1]}")
    if n_features < 1 or n_components < 1:
        raise UmapError(f"projection {n_features} -> {n_components}: both sizes must be at least 1")
    rng = np.random.RandomState(seed)
    components = rng.normal(loc=0.0, scale=1.0 / np.sqrt(n_components), size=(n_components, n_features))
    return np.ascontiguousarray(components.T, dtype=np.float32)


def rows_matrix(column: pa.Array | pa.ChunkedArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix, valid)``: the non-null list rows of ``column`` as a float32 ``(n_valid, width)`` matrix.

    ``valid`` is the boolean mask of the non-null rows. Raises :class:`UmapError`
    for a row whose length is not ``width``.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    dense = column if valid.all() else column.filter(pa.array(valid))
    lengths = pc.list_value_length(dense).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != width or lengths.max() != width):
        bad = int(lengths[lengths != width][0])
        raise UmapError(f"an embedding has {bad} values where {width} were expected")
    values = dense.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(len(dense), width), valid


def list_column(matrix: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Arrow ``list<float>`` with one row per entry of ``valid``: the next row of ``matrix``, or null."""
    width = matrix.shape[1]
    full = np.zeros((len(valid), width), dtype=np.float32)
    full[valid] = matrix
    offsets = pa.array(np.arange(0, (len(valid) + 1) * width, width, dtype=np.int32))
    mask = None if valid.all() else pa.array(~valid)
    return pa.ListArray.from_arrays(offsets, pa.array(full.ravel()), mask=mask)


def projected_schema(schema: StructType, column: str, output: str) -> StructType:
    """``schema`` without ``column``, with ``output`` (``array<float>``) appended."""
    fields = [f for f in schema.fields if f.name != column]
    return StructType([*fields, StructField(output, ArrayType(FloatType()), True)])


def _project_batches(
    matrix: np.ndarray, column: str, output: str
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``mapInArrow`` function: ``column`` (list of ``matrix.shape[0]`` numbers) -> ``output`` = row @ matrix."""
    width = matrix.shape[0]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows, valid = rows_matrix(batch.column(column), width)
            projected = list_column(rows @ matrix, valid)
            kept = [name for name in batch.schema.names if name != column]
            yield pa.RecordBatch.from_arrays([*(batch.column(n) for n in kept), projected], names=[*kept, output])

    return run


def project_frame(frame: DataFrame, column: str, matrix: np.ndarray, output: str = "features") -> DataFrame:
    """``frame`` with the list column ``column`` replaced by ``output`` = ``column @ matrix`` (float32).

    Null embeddings stay null. The matrix travels inside the task closure. A row
    of the wrong length fails its task with :class:`UmapError`.
    """
    return frame.mapInArrow(_project_batches(matrix, column, output), projected_schema(frame.schema, column, output))

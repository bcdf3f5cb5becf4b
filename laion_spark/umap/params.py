"""Defaults and names of the UMAP stage, light enough for the command line to import (no numpy, no Spark).

The published laion-aesthetics-12m-umap run: CLIP ViT-B/32 pooled text output,
a Gaussian random projection to 64-d, then UMAP to 2-D with n_neighbors 10, 30
and 60, 1000 epochs and a negative sample rate of 20.
"""

from __future__ import annotations

from ..subsets.params import PUBLISHED_COLUMNS
from .errors import UmapError

#: The hand-off table between the Spark side and the UMAP job, and the job's output table.
SAMPLE_TABLE, UMAP_TABLE = "umap_sample", "umap"
#: Every subset (and so ``umap_sample``) carries LAION's published columns (``PUBLISHED_COLUMNS`` of
#: :mod:`laion_spark.subsets.params`); the ``umap`` table starts with them.

NEIGHBORS = (10, 30, 60)
EPOCHS = 1000
NEGATIVE_SAMPLE_RATE = 20
DIM = 64
SEED = 0
#: ``pooled``: the text tower's pooled output, as published; ``projected``: CLIP's projected, L2-normalised output.
MODES = ("pooled", "projected")
MODE = "pooled"
#: Backends of :func:`laion_spark.umap.select_backend`; ``auto`` = cuML where it imports, else umap-learn.
BACKENDS = ("auto", "cuml", "umap-learn")
#: Captions per CLIP batch.
EMBED_BATCH = 256

#: cuML switches to NN-descent with the data kept on the host from this many fit rows on (its own ``auto``
#: switches to NN-descent above 50,000 rows); from ``NN_DESCENT_CLUSTER_ROWS`` on the kNN graph is built in
#: ``NN_DESCENT_CLUSTERS`` batches so that device memory holds a fraction of the rows at a time.
NN_DESCENT_MIN_ROWS = 50_000
NN_DESCENT_CLUSTER_ROWS = 2_000_000
NN_DESCENT_CLUSTERS = 4

#: Rows per Spark partition of the embedding, projection and transform passes.
PARTITION_ROWS = 50_000
#: Most bytes of pickled models one transform plan may carry: a Spark Connect plan travels as one gRPC message
#: (128 MiB by default, on Sail too), and the models ride in its task closure.
MODEL_BYTES_LIMIT = 100 * 2**20
#: Pickled umap-learn model bytes per fit row (measured: 9.4 MiB for 10,000 rows of 64-d), for the check
#: before the fit.
MODEL_BYTES_PER_FIT_ROW = 1_000
#: Rows per ``createDataFrame`` chunk when the fitted coordinates go back to Spark.
COORDINATE_CHUNK_ROWS = 1_000_000
#: Side of the datashader renders, in pixels.
RENDER_PIXELS = 800


def coordinate_columns(neighbors: tuple[int, ...] | list[int]) -> list[str]:
    """``["x_nn10", "y_nn10", ...]``: one pair per configured n_neighbors, in that order."""
    return [f"{axis}_nn{n}" for n in neighbors for axis in ("x", "y")]


def umap_columns(neighbors: tuple[int, ...] | list[int]) -> list[str]:
    """Columns of the ``umap`` table: LAION's published columns, then the coordinate pairs."""
    return [*PUBLISHED_COLUMNS, *coordinate_columns(neighbors)]


def parse_neighbors(text: str) -> tuple[int, ...]:
    """``"10,30,60"`` -> ``(10, 30, 60)``; :class:`UmapError` naming a value that is not an integer >= 2, or a repeat."""
    values = []
    for part in text.split(","):
        item = part.strip()
        if not item.isdigit() or int(item) < 2:
            raise UmapError(f"--neighbors {text!r}: {item!r} is not an integer >= 2")
        if int(item) in values:
            raise UmapError(f"--neighbors {text!r}: {item} is given twice")
        values.append(int(item))
    return tuple(values)

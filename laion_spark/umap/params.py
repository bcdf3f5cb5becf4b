"""Defaults and names of the UMAP stage, light enough for the command line to import (no numpy, no Spark).

The published laion-aesthetics-12m-umap run: CLIP ViT-B/32 pooled text output,
a Gaussian random projection to 64-d, then UMAP to 2-D with n_neighbors 10, 30
and 60, 1000 epochs and a negative sample rate of 20.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..clip.params import MODEL_HELP, TEXT_MODES
from ..lake.layout import lake_table
from ..stage import FROM_LAKE, ParamError, Stage, param
from ..subsets.params import PUBLISHED_COLUMNS, subset_table
from .errors import UmapError

#: The hand-off table between the Spark side and the UMAP job, and the job's output table.
SAMPLE_TABLE, UMAP_TABLE = "umap_sample", "umap"
#: Every subset (and so ``umap_sample``) carries LAION's published columns (``PUBLISHED_COLUMNS`` of
#: :mod:`laion_spark.subsets.params`); the ``umap`` table starts with them.

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

#: umap-learn fits on every pairwise distance below this many fit rows (its own threshold). It computes them through a
#: Python callable per pair, so scikit-learn computes them here, vectorised, and umap-learn gets them as
#: ``metric="precomputed"`` (3,000 rows: 5.5 s against umap-learn's own 16.0 s, ``bench.umap`` part 3). From this many
#: rows on, NN-descent: its numba compile costs 50-75 s once per process on the 2-core VM.
EXACT_DISTANCES_BELOW_ROWS = 4096
#: Distances per block (rows x fit rows) when an exact-distance model transforms new rows: 64 MiB of float32.
DISTANCE_BLOCK = 2**24

#: Rows per Spark partition of the embedding, projection and transform passes.
PARTITION_ROWS = 50_000
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


#: Seeds numpy's generators take.
SEED_RANGE = (0, 2**32 - 1)
_SEED_HELP = "Seed of the hash that picks the rows."


@dataclass(frozen=True, kw_only=True)
class SampleForUmap(Stage):
    """Write LAKE/umap_sample: ROWS rows of subset_<SUBSET> chosen by xxhash64(hash, SEED), the same on every engine."""

    command: ClassVar[str] = "sample-for-umap"
    job: ClassVar[str] = "laion_spark.umap.sample:sample_for_umap"

    lake: str = param(help="Lake folder holding the subset.", path=True, pipeline=FROM_LAKE)
    subset: str = param(help="Subset name (aesthetics_6plus) or its table.")
    rows: int = param(help="Rows to sample (all when the subset has fewer).", minimum=1, flags=("--rows", "-n"))
    seed: int = param(0, help=_SEED_HELP, minimum=0, flags=("--seed", "-s"))

    def check(self) -> None:
        """The subset is named like one."""
        subset_table(self.subset)

    def inputs(self) -> list[str]:
        """The subset's table."""
        return [lake_table(self.lake, subset_table(self.subset))]

    def outputs(self) -> list[str]:
        """The sample."""
        return [lake_table(self.lake, SAMPLE_TABLE)]


@dataclass(frozen=True, kw_only=True)
class Umap(Stage):
    """Lay LAKE/umap_sample out in 2-D per n_neighbors into LAKE/umap, with a datashader PNG per layout.

    Captions are embedded with CLIP (pooled text output, as the published laion-aesthetics-12m-umap), projected
    to --dim in the Spark tasks with a seeded Gaussian random projection, and laid out with cuML UMAP where it
    imports, else umap-learn (a warning says so). The backend and its exact parameters are logged, stored in
    runs and written to umap.json.
    """

    command: ClassVar[str] = "umap"
    job: ClassVar[str] = "laion_spark.umap.job:build_umap"
    resources: ClassVar[str] = "gpu"

    lake: str = param(help="Lake folder holding umap_sample.", path=True, pipeline=FROM_LAKE)
    model: str = param(help=MODEL_HELP)
    neighbors: tuple[int, ...] = param(
        (10, 30, 60),
        help="n_neighbors values, one layout each (comma-separated).",
        minimum=2,
        parse=parse_neighbors,
        show="10,30,60",
    )
    epochs: int = param(1000, help="UMAP optimisation epochs per layout.", minimum=1)
    negative_sample_rate: int = param(20, help="Negative samples per positive edge.", minimum=1)
    dim: int = param(64, help="Width of the Gaussian random projection.", minimum=2)
    seed: int = param(0, help="Seed of the projection, the fit rows and UMAP.", minimum=0, flags=("--seed", "-s"))
    fit_rows: int | None = param(
        None, help="Fit on this many rows and transform the rest in Spark tasks (default: fit on all).", minimum=1
    )
    mode: str = param(
        "pooled", help=f"Text embedding: {' or '.join(TEXT_MODES)} (projected is L2-normalised).", choices=TEXT_MODES
    )
    renders: str | None = param(
        None, help="Folder for the PNG renders and umap.json (default: umap/ beside the lake).", path=True
    )
    backend: str = param("auto", help=f"UMAP backend: {', '.join(BACKENDS)} (auto: cuML where it imports).",
                         choices=BACKENDS)  # fmt: skip

    def check(self) -> None:
        """At least one layout; fit rows above the largest n_neighbors; a seed numpy takes."""
        if not self.neighbors:
            raise ParamError("neighbors", "give at least one value")
        if self.fit_rows is not None and self.fit_rows <= max(self.neighbors):
            raise ParamError("fit_rows", f"{self.fit_rows} must exceed the largest n_neighbors ({max(self.neighbors)})")
        if self.seed > SEED_RANGE[1]:
            raise ParamError("seed", f"{self.seed} is outside numpy's seed range {SEED_RANGE[0]}..{SEED_RANGE[1]}")

    def inputs(self) -> list[str]:
        """The sample."""
        return [lake_table(self.lake, SAMPLE_TABLE)]

    def outputs(self) -> list[str]:
        """The layouts, and the renders' folder."""
        return [lake_table(self.lake, UMAP_TABLE), *([self.renders] if self.renders else [])]

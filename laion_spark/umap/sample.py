"""``sample-for-umap``: a deterministic sample of a subset, the hand-off table ``umap_sample``.

Rows are ranked by ``xxhash64(hash, seed)`` (then by every column, so that ties
are broken the same way everywhere) and the first ``rows`` are kept: the same
rows on Sail, classic Spark and Databricks for the same seed, since
``xxhash64`` is Spark's own function. (On Sail ``orderBy(rand(seed))`` does not
shuffle and ``DataFrame.sample`` misbehaves, so neither is used.)

At scale a global sort of the whole subset is avoided: one aggregate counts the
rows and, for k = 1 .. 40, the rows whose rank key lies in the lowest 2^-k of
the int64 range; only the smallest such slice that still holds ``rows`` rows is
sorted. The first ``rows`` keys always lie in that slice, so the result is the
one a full sort would give.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..errors import InvariantError
from ..lake.columns import require_columns
from ..lake.layout import lake_table
from ..lake.runs import RunSummary, record_run
from ..lake.tables import read_table, write_table
from ..subsets.params import PUBLISHED_KINDS, subset_table
from .params import SAMPLE_TABLE, SampleForUmap
from .tables import check_columns_unchanged

if TYPE_CHECKING:
    from ..engine.session import LakeSession

JOB = "sample-for-umap"
_log = logging.getLogger("laion_spark.umap")
_RANK = "_umap_rank"
#: Slices tried: the lowest 2^-k of the int64 key range, k = 1 .. 40.
_SLICES = 40


def rank_key(seed: int) -> Column:
    """The seeded rank of a row: ``xxhash64(hash, seed)`` (Spark's function, the same on every engine)."""
    return F.xxhash64(F.col("hash"), F.lit(int(seed)))


def _slice_bound(k: int) -> int:
    """Upper bound (exclusive) of the lowest 2^-k of the signed int64 range."""
    return -(2**63) + 2 ** (64 - k)


def first_by_rank(frame: DataFrame, rows: int, seed: int) -> tuple[DataFrame, int]:
    """The ``rows`` rows of ``frame`` with the smallest seeded rank, and how many rows ``frame`` has.

    Ties of the rank key are broken by ``hash`` and then every other column, so
    only fully identical rows are interchangeable. All rows when ``frame`` has
    at most ``rows``.
    """
    keyed = frame.withColumn(_RANK, rank_key(seed))
    counts = keyed.agg(
        F.count(F.lit(1)).alias("total"),
        *(
            F.sum(F.when(F.col(_RANK) < F.lit(_slice_bound(k)), 1).otherwise(0)).alias(f"k{k}")
            for k in range(1, _SLICES + 1)
        ),
    ).first()
    total = int(counts["total"])
    if total <= rows:
        return frame, total
    deepest = max((k for k in range(1, _SLICES + 1) if (counts[f"k{k}"] or 0) >= rows), default=0)
    if deepest:
        keyed = keyed.where(F.col(_RANK) < F.lit(_slice_bound(deepest)))
    order = [_RANK, "hash", *(c for c in frame.columns if c != "hash")]
    return keyed.orderBy(*order).limit(rows).drop(_RANK), total


def sample_for_umap(lake: LakeSession, stage: SampleForUmap) -> RunSummary:
    """Write ``<stage.lake>/umap_sample``: ``stage.rows`` rows of ``subset_<stage.subset>`` chosen by
    ``xxhash64(hash, stage.seed)``; record the run.

    The sample keeps the subset's columns. ``rows`` is exact when the subset has
    at least that many rows, else the whole subset is taken (metric
    ``subset_rows`` says how many it had). Raises :class:`UmapError` for an
    existing sample with other columns, a
    :class:`~laion_spark.lake.TableError` for a missing subset or column (the lake
    unchanged), and :class:`~laion_spark.errors.InvariantError` when the written
    table does not hold the rows chosen.
    """
    lake_dir, rows, seed = stage.lake, stage.rows, stage.seed
    source = lake_table(lake_dir, subset_table(stage.subset))
    frame = read_table(lake, source)
    require_columns(frame.schema, PUBLISHED_KINDS, source)
    target = lake_table(lake_dir, SAMPLE_TABLE)
    check_columns_unchanged(lake, target, frame.columns)
    summary = RunSummary(job=JOB, collection="*", target=SAMPLE_TABLE)
    _log.info("sample-for-umap: ranking %s by xxhash64(hash, %d)", source, seed)
    chosen, total = first_by_rank(frame, rows, seed)
    expected = min(rows, total)
    write_table(lake, chosen, target, mode="overwrite")
    written = read_table(lake, target).count()
    summary.metrics = {"subset_rows": total, "requested_rows": rows, "rows": written, "seed": seed}
    if written != expected:
        raise InvariantError(f"{target}: {written} rows written, {expected} chosen", summary)
    _log.info("sample-for-umap: %d of %d rows -> %s", written, total, target)
    record_run(lake, lake_dir, summary)
    return summary

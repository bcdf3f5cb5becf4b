"""Score distributions: counts of aesthetic scores per unit bucket, in LAION's published form.

The lake table ``score_distribution`` is long format, one row per
``(collection, head, bucket)`` with every bucket present (zero counts too):
``collection string, head string, bucket string, bucket_order int, count long``.
Buckets are ``below_0``, ``0-1`` ... ``9-10`` (``[k, k+1)`` by floor), ``10_and_above``
and ``missing`` (null, NaN or infinite score: :mod:`laion_spark.lake.finite`), so the counts of a collection
and head sum to its rows in ``aesthetic_tags``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

from ..lake.finite import finite, non_finite
from ..lake.layout import lake_table
from ..lake.runs import RunSummary, record_run
from ..lake.tables import read_table, write_table
from .buckets import BUCKETS
from .params import DISTRIBUTION_TABLE, TAGS_TABLE, ScoreDistribution

if TYPE_CHECKING:
    from ..engine.session import LakeSession

DISTRIBUTION_SCHEMA = StructType(
    [
        StructField("collection", StringType()),
        StructField("head", StringType()),
        StructField("bucket", StringType()),
        StructField("bucket_order", IntegerType()),
        StructField("count", LongType()),
    ]
)


def bucket_order(score: Column) -> Column:
    """Index into :data:`BUCKETS` of each score: below 0, floor bucket, 10 and above, missing (null, NaN, ±inf)."""
    return (
        F.when(~finite(score), F.lit(len(BUCKETS) - 1))
        .when(score < 0, F.lit(0))
        .when(score >= 10, F.lit(len(BUCKETS) - 2))
        .otherwise(F.floor(score.cast("double")).cast("int") + 1)
        .cast("int")
    )


def score_distribution(tags: DataFrame) -> pd.DataFrame:
    """Counts per ``(collection, head, bucket)`` of an ``aesthetic_tags`` frame, every bucket listed."""
    return _full_distribution(_bucket_counts(tags))


def _bucket_counts(tags: DataFrame) -> pd.DataFrame:
    """Rows per ``(collection, head, bucket_order)`` present, and of them ``non_finite`` (NaN or infinite score)."""
    return (
        tags.groupBy("collection", "head", bucket_order(F.col("aesthetic")).alias("bucket_order"))
        .agg(
            F.count(F.lit(1)).cast("long").alias("count"),
            F.count(F.when(non_finite(F.col("aesthetic")), 1)).cast("long").alias("non_finite"),
        )
        .toPandas()
    )


def _full_distribution(grouped: pd.DataFrame) -> pd.DataFrame:
    """The counts of :func:`_bucket_counts` with every bucket of every ``(collection, head)`` listed."""
    grouped = grouped.drop(columns="non_finite")
    pairs = grouped[["collection", "head"]].drop_duplicates()
    full = pairs.merge(pd.DataFrame({"bucket_order": range(len(BUCKETS))}), how="cross")
    full = full.merge(grouped, on=["collection", "head", "bucket_order"], how="left")
    full["count"] = full["count"].fillna(0).astype("int64")
    full["bucket_order"] = full["bucket_order"].astype("int32")
    full["bucket"] = [BUCKETS[i] for i in full["bucket_order"]]
    full = full.sort_values(["collection", "head", "bucket_order"], ignore_index=True)
    return full[[f.name for f in DISTRIBUTION_SCHEMA.fields]]


def build_score_distribution(lake: LakeSession, stage: ScoreDistribution) -> pd.DataFrame:
    """Compute the distribution of ``<stage.lake>/aesthetic_tags``, rewrite ``<stage.lake>/score_distribution``
    and record the run (job ``stats``: rows and rows per bucket kind). Returns the table as pandas; raises
    :class:`~laion_spark.lake.TableError` when ``aesthetic_tags`` is missing or unreadable."""
    lake_dir = stage.lake
    counts = _bucket_counts(read_table(lake, lake_table(lake_dir, TAGS_TABLE)))
    table = _full_distribution(counts)
    frame = lake.spark.createDataFrame(table, schema=DISTRIBUTION_SCHEMA)
    write_table(lake, frame.coalesce(1), lake_table(lake_dir, DISTRIBUTION_TABLE), mode="overwrite")
    summary = RunSummary(job=stage.command, collection="*", target=DISTRIBUTION_TABLE)
    summary.metrics = {
        "rows": int(table["count"].sum()),
        "rows_missing_score": int(table.loc[table["bucket"] == "missing", "count"].sum()),
        "rows_non_finite_score": int(counts["non_finite"].sum()),
        "collections": int(table["collection"].nunique()),
        "heads": int(table["head"].nunique()),
    }
    record_run(lake, lake_dir, summary)
    return table


def read_score_distribution(lake: LakeSession, lake_dir: str | Path) -> pd.DataFrame:
    """The ``score_distribution`` table as pandas, sorted by collection, head and bucket."""
    table = read_table(lake, lake_table(lake_dir, DISTRIBUTION_TABLE)).toPandas()
    return table.sort_values(["collection", "head", "bucket_order"], ignore_index=True)

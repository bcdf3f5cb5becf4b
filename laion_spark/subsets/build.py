"""LAION-Aesthetics subsets: the safety filter, then one table per aesthetic threshold.

Semantics follow LAION's ``aesthetic_join.py`` / ``laion_art.py``:

* safety: ``pwatermark < 0.8 AND punsafe < 0.5`` (thresholds from the config). With
  LAION's SQL semantics a null tag fails the filter; ``keep_null_tags`` lets a null
  tag pass (a known failing tag still fails). A NaN or infinite tag always fails
  (counted: ``non_finite_tags``, :mod:`laion_spark.lake.finite`).
* threshold: strict ``aesthetic > t``; a null, NaN or infinite score never passes
  (``+inf > 8`` would: counted as ``non_finite_score``, part of ``missing_score``).
* columns, in order: LAION's ``URL, TEXT, WIDTH, HEIGHT, similarity, punsafe,
  pwatermark, AESTHETIC_SCORE, hash``, then ``collection``, then the subset's
  ``extra_columns`` (laion-art adds ``LANGUAGE``).
* optional seeded shuffle: rows are spread over ``target_files`` partitions by
  ``xxhash64(hash, seed)`` and sorted by it inside each one, so each output file
  is a random, reproducible slice in random order. (On Sail ``orderBy(rand())``
  does not shuffle, a global sort collapses to one partition, and a
  ``sortWithinPartitions`` right before a write is dropped, so the in-partition
  sort runs in ``mapInArrow``. Each partition, i.e. one output file, is held in
  memory by its task; Sail runs every task at once, so the sorted copies are
  made one per CPU at a time, :mod:`laion_spark.engine.cpu_slots`.)

Each subset table is rewritten whole. Per subset a run summary is recorded whose
counts add up: ``joined = passed_safety + failed_safety + failed_null_tags`` and
``passed_safety = rows + below_threshold + missing_score``; ``non_finite_tags`` (rows with a NaN or infinite
tag, all failed) and ``non_finite_score`` (passed rows whose score is NaN or infinite, of ``missing_score``)
say how many non-finite values were kept out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..engine.cpu_slots import cpu_slot
from ..errors import InputError
from ..ingest.params import JOINED_TABLE
from ..lake.columns import require_columns
from ..lake.finite import finite, non_finite
from ..lake.layout import is_local, lake_table, table_path
from ..lake.runs import RunSummary, record_run
from ..lake.tables import delta_version, read_table, table_exists, write_table
from .params import PUBLISHED_COLUMNS, BuildSubsets, SafetyConfig, SubsetsConfig, SubsetSpec

if TYPE_CHECKING:
    from ..engine.session import LakeSession

JOB = "subsets"
#: LAION's subset column order (``improved_aesthetics_*``), then ``collection``.
SUBSET_COLUMNS = (*PUBLISHED_COLUMNS, "collection")
#: Columns of ``joined`` the subsets read, and their kinds.
JOINED_COLUMNS = {
    "URL": "string",
    "TEXT": "string",
    "WIDTH": "integer",
    "HEIGHT": "integer",
    "similarity": "floating",
    "punsafe": "floating",
    "pwatermark": "floating",
    "aesthetic": "floating",
    "hash": "integer",
    "collection": "string",
}
#: Safety outcome of a ``joined`` row, one of these three.
PASSED, FAILED_SAFETY, FAILED_NULL_TAGS = "passed", "failed_safety", "failed_null_tags"
_SHUFFLE_KEY = "_shuffle_key"


class SubsetError(InputError):
    """A subset cannot be built as configured (bad column, incompatible existing table)."""


def _known_ok(column: str, below: float) -> Column:
    """The tag is a finite number below the limit (never null)."""
    col = F.col(column)
    return finite(col) & (col < F.lit(below))


def safety_outcome(safety: SafetyConfig) -> Column:
    """``passed`` / ``failed_safety`` / ``failed_null_tags`` for each ``joined`` row."""
    w_ok, u_ok = _known_ok("pwatermark", safety.pwatermark_below), _known_ok("punsafe", safety.punsafe_below)
    w_null, u_null = F.col("pwatermark").isNull(), F.col("punsafe").isNull()
    known_bad = (~w_ok & ~w_null) | (~u_ok & ~u_null)
    return (
        F.when(w_ok & u_ok, F.lit(PASSED))
        .when(known_bad, F.lit(FAILED_SAFETY))
        .when(F.lit(safety.keep_null_tags), F.lit(PASSED))
        .otherwise(F.lit(FAILED_NULL_TAGS))
    )


def passes_threshold(threshold: float) -> Column:
    """Strict ``aesthetic > threshold``; false (never null) for a null, NaN or infinite score."""
    score = F.col("aesthetic")
    return finite(score) & (score > F.lit(threshold))


def _has_score() -> Column:
    return finite(F.col("aesthetic"))


def subset_counts(joined: DataFrame, config: SubsetsConfig) -> pd.DataFrame:
    """Per collection: rows in ``joined``, safety outcomes, rows without a score and rows per subset.

    One aggregate over ``joined``; columns ``collection, joined, passed_safety,
    failed_safety, failed_null_tags, kept_null_tags, missing_score, non_finite_score, non_finite_tags`` and one
    ``subset_<name>`` column per configured subset (0 outside its collections).
    """
    outcome = safety_outcome(config.safety)
    passed = outcome == F.lit(PASSED)
    has_null_tag = F.col("pwatermark").isNull() | F.col("punsafe").isNull()

    def count_if(condition: Column, name: str) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0)).cast("long").alias(name)

    aggs = [
        F.count(F.lit(1)).cast("long").alias("joined"),
        count_if(passed, "passed_safety"),
        count_if(outcome == F.lit(FAILED_SAFETY), "failed_safety"),
        count_if(outcome == F.lit(FAILED_NULL_TAGS), "failed_null_tags"),
        count_if(passed & has_null_tag, "kept_null_tags"),
        count_if(passed & ~_has_score(), "missing_score"),
        count_if(passed & non_finite(F.col("aesthetic")), "non_finite_score"),
        count_if(non_finite(F.col("pwatermark")) | non_finite(F.col("punsafe")), "non_finite_tags"),
    ]
    for spec in config.subsets:
        in_scope = F.col("collection").isin(list(spec.collections)) if spec.collections else F.lit(True)
        aggs.append(count_if(passed & in_scope & passes_threshold(spec.threshold), spec.table))
    counts = joined.groupBy("collection").agg(*aggs).toPandas()
    return counts.sort_values("collection", ignore_index=True)


def subset_frame(joined: DataFrame, spec: SubsetSpec, config: SubsetsConfig) -> DataFrame:
    """The rows and columns of one subset, shuffled and partitioned as configured."""
    missing = [c for c in spec.extra_columns if c not in joined.columns]
    if missing:
        raise SubsetError(f"subset {spec.name}: extra column {missing[0]!r} is not a column of joined {joined.columns}")
    doubled = [c for c in spec.extra_columns if c in SUBSET_COLUMNS]
    if doubled:
        raise SubsetError(f"subset {spec.name}: extra column {doubled[0]!r} is already one of LAION's columns")
    rows = joined.where((safety_outcome(config.safety) == F.lit(PASSED)) & passes_threshold(spec.threshold))
    if spec.collections:
        rows = rows.where(F.col("collection").isin(list(spec.collections)))
    columns = [F.col(c) for c in SUBSET_COLUMNS if c != "AESTHETIC_SCORE"]
    columns.insert(SUBSET_COLUMNS.index("AESTHETIC_SCORE"), F.col("aesthetic").alias("AESTHETIC_SCORE"))
    rows = rows.select(*columns, *spec.extra_columns)
    if config.shuffle_seed is not None:
        keyed = rows.withColumn(_SHUFFLE_KEY, F.xxhash64(F.col("hash"), F.lit(config.shuffle_seed)))
        key = F.col(_SHUFFLE_KEY)
        spread = keyed.repartition(config.target_files, key) if config.target_files else keyed.repartition(key)
        return spread.mapInArrow(_sort_by_shuffle_key(rows.columns), rows.schema)
    if config.target_files:
        return rows.repartition(config.target_files)
    return rows


def _sort_by_shuffle_key(columns: list[str]):
    """``mapInArrow`` function: sort the partition by the shuffle key (then every column, for ties), drop the key."""
    order = [(_SHUFFLE_KEY, "ascending"), *((c, "ascending") for c in columns)]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        held = list(batches)
        if not held:
            return
        with cpu_slot():
            table = pa.Table.from_batches(held).sort_by(order).select(columns)
        del held
        yield from table.to_batches(max_chunksize=65_536)

    return run


def build_subsets(lake: LakeSession, stage: BuildSubsets) -> list[RunSummary]:
    """Write ``<stage.lake>/subset_<name>`` for every subset of ``stage.config`` (default: the packaged
    ``pipeline.yaml``'s) and record one run summary each.

    Every subset is planned and checked (``joined``'s columns, extra columns, an
    existing table's columns) before the first table is written, so a
    :class:`SubsetError` or :class:`~laion_spark.lake.TableError` leaves the lake as it was. Every
    subset and count is read from one snapshot of ``joined`` (its Delta version at the start).
    """
    config, lake_dir = stage.subsets, stage.lake
    joined_path = lake_table(lake_dir, JOINED_TABLE)
    # One snapshot for every action of the run: a join-tags committing meanwhile changes no count or subset.
    version = delta_version(joined_path) if lake.table_format == "delta" else None
    joined = read_table(lake, joined_path, version=version)
    require_columns(joined.schema, JOINED_COLUMNS, joined_path)
    planned = []
    for spec in config.subsets:
        path = lake_table(lake_dir, spec.table)
        frame = subset_frame(joined, spec, config)
        _check_schema_unchanged(lake, path, frame)
        planned.append((spec, path, frame))
    counts = subset_counts(joined, config)
    summaries = []
    for spec, path, frame in planned:
        summary = RunSummary(
            job=JOB, collection=",".join(spec.collections) if spec.collections else "*", target=spec.table
        )
        write_table(lake, frame, path, mode="overwrite")
        scope = counts[counts["collection"].isin(spec.collections)] if spec.collections else counts
        total = {name: int(scope[name].sum()) for name in counts.columns if name != "collection"}
        summary.metrics = {
            "joined": total["joined"],
            "failed_safety": total["failed_safety"],
            "failed_null_tags": total["failed_null_tags"],
            "passed_safety": total["passed_safety"],
            "kept_null_tags": total["kept_null_tags"],
            "missing_score": total["missing_score"],
            "non_finite_score": total["non_finite_score"],
            "non_finite_tags": total["non_finite_tags"],
            "below_threshold": total["passed_safety"] - total["missing_score"] - total[spec.table],
            "rows": total[spec.table],
        }
        files = written_files(lake, path)
        if files is not None:
            summary.metrics["files"] = files
        record_run(lake, lake_dir, summary)
        summaries.append(summary)
    return summaries


def _check_schema_unchanged(lake: LakeSession, path: Path, frame: DataFrame) -> None:
    """Refuse an overwrite that would change the columns: Sail's Delta overwrite drops new columns silently."""
    if not table_exists(lake, path):
        return
    old = read_table(lake, path).columns
    if old != frame.columns:
        raise SubsetError(
            f"{path}: the existing table has columns {old} but the subset now has {frame.columns}; "
            "remove the table folder to rebuild it with the new columns"
        )


def written_files(lake: LakeSession, path: str | Path) -> int | None:
    """Data files of a table just rewritten whole: ``add`` actions of the last Delta commit, or Parquet files.

    ``None`` for tables outside the local file system.
    """
    text = table_path(path)
    if not is_local(text):
        return None
    folder = Path(text)
    if lake.table_format == "parquet":
        return sum(1 for _ in folder.rglob("*.parquet"))
    commits = sorted((folder / "_delta_log").glob("*.json"))
    with commits[-1].open(encoding="utf-8") as log:
        return sum(1 for line in log if "add" in json.loads(line))

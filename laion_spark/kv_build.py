"""Build a ``static_ondisk_kv`` file (hash -> float16 values) from a lake table with Spark.

The file is the one ``static_ondisk_kv.parquet_to_file`` writes from the same
sorted, deduplicated rows, byte for byte (see :mod:`laion_spark.kv`), but it is
written from Arrow batches as numpy record arrays instead of a Python loop per
row.

How the keys end up globally sorted with bounded memory on every engine (Sail
neither range-partitions nor keeps a global sort parallel):

1. count the rows (and null keys), and choose ``K = ceil(rows / max_rows_per_range)``;
2. with ``K > 1``: take the range boundaries from a seeded sample of keys, and
   stage the rows in a scratch table partitioned by range number (one pass,
   range numbers computed with ``np.searchsorted`` in ``mapInArrow``);
3. for each range in ascending order: sort it with Spark, fetch it as Arrow
   (at most about ``max_rows_per_range`` rows on the driver), drop duplicate
   keys, check the keys continue strictly increasing, and append the records
   to ``OUT.partial``;
4. check the count (rows in = written + duplicates dropped + null keys
   rejected) and rename ``OUT.partial`` to ``OUT``.

Values: a null is written as NaN (what ``parquet_to_file`` writes for a pandas
NaN); a finite value too large for its format (``e``: 65504) is an error naming
the column, the hash and the value, as ``struct.pack`` refuses it too. Rows
with a null key cannot be looked up: they are left out and counted.

Duplicate keys (``on_duplicate``): ``first`` keeps, per key, the row whose
values come first in ascending order (value columns left to right, NaN and
null last): deterministic on every engine, whatever the file order; ``max``
keeps the row with the largest values (same order, descending; NaN and null
last); ``error`` refuses the table, naming a duplicated hash and the counts.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .kv import record_dtype
from .lake import is_delta, read_table, table_path, write_table
from .runs import RunSummary
from .session import LakeSession

ON_DUPLICATE = ("first", "max", "error")
DEFAULT_MAX_ROWS_PER_RANGE = 5_000_000
#: Sampled keys per range when choosing the range boundaries.
SAMPLE_KEYS_PER_RANGE = 256
_SAMPLE_SEED = 20_240_917
_RANGE = "kv_range"
_NUMERIC = (T.FloatType, T.DoubleType, T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)


class KVBuildError(ValueError):
    """The input table cannot be turned into a KV file (bad column, value or duplicate key)."""


@dataclass(frozen=True)
class KVBuildResult:
    """What :func:`build_kv` wrote, and how every input row was accounted for."""

    path: Path
    value_format: str
    record_size: int
    rows_in: int
    rows_written: int
    duplicates_dropped: int
    null_keys_rejected: int
    ranges: int

    def summary(self) -> RunSummary:
        """The run summary (rows in = written + duplicates dropped + null keys rejected)."""
        return RunSummary(
            job="build-kv",
            collection="*",
            metrics={
                "rows_in": self.rows_in,
                "rows_written": self.rows_written,
                "duplicates_dropped": self.duplicates_dropped,
                "null_keys_rejected": self.null_keys_rejected,
                "key_ranges": self.ranges,
                "file_bytes": self.rows_written * self.record_size,
            },
        )


def read_source(lake: LakeSession, table: str | Path) -> DataFrame:
    """The table at ``table``: a Delta table, or a Parquet folder or file.

    A local Delta table needs a Delta session; other local paths are read as
    Parquet whatever the session's format; URIs are read in the session's format.
    """
    text = table_path(table)
    local = _is_local(text)
    if local and is_delta(text):
        if lake.table_format != "delta":
            raise KVBuildError(
                f"{text} is a Delta table but this session reads {lake.table_format} (use --table-format delta)"
            )
        return read_table(lake, text)
    if local:
        if not Path(text).exists():
            raise FileNotFoundError(f"no table at {text}")
        return lake.spark.read.parquet(text)
    return read_table(lake, text)


def build_kv(
    lake: LakeSession,
    source: str | Path | DataFrame,
    out: str | Path,
    value_columns: Sequence[str],
    *,
    key_column: str = "hash",
    value_format: str | None = None,
    on_duplicate: str = "first",
    max_rows_per_range: int = DEFAULT_MAX_ROWS_PER_RANGE,
    where: str | None = None,
    staging: str | Path | None = None,
) -> KVBuildResult:
    """Write the KV file ``out`` from ``source`` (a table path or a DataFrame).

    ``value_format`` has one code per value column (``e`` float16, ``f``
    float32, ``d`` float64); default ``e`` for each. ``where`` filters the rows
    first (SQL). ``staging`` is the scratch table of a multi-range build
    (default ``OUT.staging``; on a cluster give a path every executor can
    reach); it must not exist, and is removed afterwards when local.
    """
    value_columns = list(value_columns)
    if not value_columns:
        raise KVBuildError("give at least one value column")
    value_format = value_format or "e" * len(value_columns)
    if len(value_format) != len(value_columns):
        raise KVBuildError(
            f"value format {value_format!r} has {len(value_format)} code(s) for {len(value_columns)} value "
            f"column(s) {', '.join(value_columns)}: give one code per column (e.g. {'e' * len(value_columns)!r})"
        )
    dtype = record_dtype(value_format)
    if on_duplicate not in ON_DUPLICATE:
        raise KVBuildError(f"on_duplicate must be one of {', '.join(ON_DUPLICATE)}, got {on_duplicate!r}")
    if max_rows_per_range < 1:
        raise KVBuildError(f"max_rows_per_range must be at least 1, got {max_rows_per_range}")

    name = "the input DataFrame" if isinstance(source, DataFrame) else table_path(source)
    df = source if isinstance(source, DataFrame) else read_source(lake, source)
    if where:
        df = df.where(where)
    rows = _select_kv_columns(df, name, key_column, value_columns)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    staging_path = table_path(staging or out.with_name(out.name + ".staging"))
    if _is_local(staging_path) and Path(staging_path).exists():
        raise KVBuildError(f"staging folder {staging_path} exists (left by an interrupted build?): remove it first")

    counts = rows.agg(F.count(F.lit(1)).alias("rows"), F.count("key").alias("keys")).collect()[0]
    rows_in, keyed = int(counts["rows"]), int(counts["keys"])
    null_keys = rows_in - keyed
    keyed_rows = rows.where(F.col("key").isNotNull())
    if on_duplicate == "error":
        _refuse_duplicates(keyed_rows, name, key_column)
    order = _row_order(keyed_rows, on_duplicate)
    try:
        ranges = _key_ranges(lake, keyed_rows, keyed, max_rows_per_range, staging_path)
        with open(partial, "wb") as sink:
            written, dropped = _write_sorted(
                sink, ranges.sorted_tables(order), value_format, value_columns, key_column, name
            )
        if rows_in != written + dropped + null_keys:
            raise KVBuildError(
                f"{name}: {rows_in:,} rows counted but {written:,} written + {dropped:,} duplicates dropped + "
                f"{null_keys:,} null keys: the table changed during the build"
            )
        size = os.path.getsize(partial)
        if size != written * dtype.itemsize:
            raise KVBuildError(f"{partial}: {size:,} bytes on disk, {written * dtype.itemsize:,} expected")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        if _is_local(staging_path):  # it did not exist before this build
            shutil.rmtree(staging_path, ignore_errors=True)
    return KVBuildResult(
        path=out,
        value_format=value_format,
        record_size=dtype.itemsize,
        rows_in=rows_in,
        rows_written=written,
        duplicates_dropped=dropped,
        null_keys_rejected=null_keys,
        ranges=ranges.count,
    )


def _is_local(path: str) -> bool:
    return "://" not in path and not path.startswith("dbfs:")


def _write_sorted(
    sink: BinaryIO,
    tables: Iterable[pa.Table],
    value_format: str,
    value_columns: list[str],
    key_column: str,
    name: str,
) -> tuple[int, int]:
    """Append the records of key-sorted ``tables``, the first row of each key only; (written, dropped)."""
    written = dropped = 0
    last_key: int | None = None
    for table in tables:
        if not table.num_rows:
            continue
        keys = table.column("key").to_numpy()
        _check_ascending(keys, last_key, name)
        keep = np.ones(keys.shape[0], dtype=bool)
        keep[1:] = keys[1:] != keys[:-1]
        values = [_values(table.column(f"v{i}"))[keep] for i in range(len(value_columns))]
        records = encode_records(keys[keep], values, value_format, value_columns, key_column)
        sink.write(records.data)
        written += records.shape[0]
        dropped += keys.shape[0] - records.shape[0]
        last_key = int(records["key"][-1])
    return written, dropped


def _select_kv_columns(df: DataFrame, name: str, key_column: str, value_columns: list[str]) -> DataFrame:
    """``key`` (long) and ``v0``, ``v1`` ... with clear errors for a missing or non-numeric column."""
    fields = {f.name: f.dataType for f in df.schema.fields}
    checks = [(key_column, _INTEGRAL, "an integer")]
    checks += [(c, _NUMERIC, "numeric (float, double or integer)") for c in value_columns]
    for column, allowed, kind in checks:
        if column not in fields:
            raise KVBuildError(f"{name}: no column {column!r}; columns are {', '.join(fields)}")
        if not isinstance(fields[column], allowed):
            raise KVBuildError(f"{name}: column {column!r} is {fields[column].simpleString()}, it must be {kind}")
    return df.select(
        F.col(key_column).cast("long").alias("key"), *[F.col(c).alias(f"v{i}") for i, c in enumerate(value_columns)]
    )


def _refuse_duplicates(rows: DataFrame, name: str, key_column: str) -> None:
    """Raise :class:`KVBuildError` naming a duplicated key and the counts, if any key repeats."""
    dup = (
        rows.groupBy("key")
        .count()
        .where(F.col("count") > 1)
        .agg(F.count(F.lit(1)).alias("keys"), F.sum("count").alias("rows"), F.min("key").alias("example"))
        .collect()[0]
    )
    if dup["keys"]:
        raise KVBuildError(
            f"{name}: {int(dup['keys']):,} {key_column} values appear more than once ({int(dup['rows']):,} rows), "
            f"e.g. {key_column} {int(dup['example'])}; choose --on-duplicate first or max to keep one row per key"
        )


def _row_order(rows: DataFrame, on_duplicate: str) -> list[Column]:
    """Sort order within a range: key, then the values (NaN and null last) in the kept row's direction."""
    order = [F.col("key").asc()]
    if on_duplicate == "error":
        return order
    for field in rows.schema.fields[1:]:
        value = F.col(field.name)
        if isinstance(field.dataType, T.FloatType | T.DoubleType):
            value = F.when(~F.isnan(value), value)
        order.append(value.asc_nulls_last() if on_duplicate == "first" else value.desc_nulls_last())
    return order


@dataclass
class _KeyRanges:
    """Ascending, disjoint key ranges of the input rows."""

    rows: DataFrame
    #: Range numbers of a staged table (column ``kv_range``); empty: one range, ``rows`` itself.
    numbers: list[int]

    @property
    def count(self) -> int:
        return max(1, len(self.numbers))

    def sorted_tables(self, order: list[Column]) -> Iterator[pa.Table]:
        """Each range sorted by ``order``, fetched as one Arrow table, in ascending key order."""
        if not self.numbers:
            yield self.rows.orderBy(*order).toArrow()
            return
        columns = [c for c in self.rows.columns if c != _RANGE]
        for number in self.numbers:
            yield self.rows.where(F.col(_RANGE) == number).select(*columns).orderBy(*order).toArrow()


def _key_ranges(lake: LakeSession, rows: DataFrame, keyed: int, max_rows_per_range: int, staging: str) -> _KeyRanges:
    """Split ``rows`` into ascending key ranges of about ``max_rows_per_range`` rows each.

    Boundaries are quantiles of a seeded key sample; the rows are staged once,
    partitioned by range number, so that each range is read back on its own.
    """
    wanted = math.ceil(keyed / max_rows_per_range)
    if wanted <= 1:
        return _KeyRanges(rows, [])
    fraction = min(1.0, SAMPLE_KEYS_PER_RANGE * wanted / keyed)
    sample = np.sort(rows.sample(fraction=fraction, seed=_SAMPLE_SEED).select("key").toArrow()["key"].to_numpy())
    bounds = np.unique(sample[(np.arange(1, wanted) * sample.shape[0]) // wanted]) if sample.shape[0] else sample

    def number_ranges(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            at = np.searchsorted(bounds, batch.column(0).to_numpy(zero_copy_only=False), side="right")
            yield batch.append_column(_RANGE, pa.array(at.astype(np.int32)))

    schema = T.StructType([*rows.schema.fields, T.StructField(_RANGE, T.IntegerType(), False)])
    write_table(lake, rows.mapInArrow(number_ranges, schema), staging, mode="overwrite", partition_by=[_RANGE])
    return _KeyRanges(read_table(lake, staging), list(range(bounds.shape[0] + 1)))


def _check_ascending(keys: np.ndarray, last_key: int | None, name: str) -> None:
    """The engine must hand back each range sorted and after the previous one; refuse the build otherwise."""
    unsorted = np.flatnonzero(keys[1:] < keys[:-1])
    if unsorted.size:
        i = int(unsorted[0])
        raise KVBuildError(f"{name}: the engine returned keys out of order ({keys[i]} before {keys[i + 1]})")
    if last_key is not None and keys[0] <= last_key:
        raise KVBuildError(f"{name}: key range starting at {keys[0]} overlaps the previous one (ending {last_key})")


def _values(column: pa.ChunkedArray) -> np.ndarray:
    """A value column as float numpy, null as NaN (integers widened to float64 first, as Python's float())."""
    if pa.types.is_integer(column.type):
        column = column.cast(pa.float64())
    return column.to_numpy(zero_copy_only=False)


def encode_records(
    keys: np.ndarray,
    values: Sequence[np.ndarray],
    value_format: str,
    value_columns: Sequence[str] | None = None,
    key_column: str = "hash",
) -> np.ndarray:
    """KV records of sorted, unique ``keys`` and their ``values`` (one float array per value, NaN for null).

    ``records.tobytes()`` is what ``struct.pack`` writes record by record. A
    finite value too large for its code raises :class:`KVBuildError` naming
    the column (``value_columns``, default ``v0``, ``v1`` ...) and the key.
    """
    dtype = record_dtype(value_format)
    value_columns = list(value_columns or dtype.names[1:])
    records = np.zeros(keys.shape[0], dtype=dtype)
    records["key"] = keys
    for name, source, column in zip(dtype.names[1:], values, value_columns, strict=True):
        target = dtype[name]
        with np.errstate(over="ignore", invalid="ignore"):
            encoded = source.astype(target)
        overflow = np.flatnonzero(np.isinf(encoded) & np.isfinite(source))
        if overflow.size:
            i = int(overflow[0])
            raise KVBuildError(
                f"column {column!r}: value {float(source[i])!r} at {key_column} {int(keys[i])} does not fit "
                f"the {np.finfo(target).bits}-bit float of the KV (largest {float(np.finfo(target).max)}); "
                f"{overflow.size:,} such value(s) in this key range"
            )
        if target == np.float16:
            # struct.pack("e") writes every NaN as the quiet NaN of its sign.
            bits = encoded.view(np.uint16)
            nan = np.isnan(encoded)
            bits[nan] = 0x7E00 | (bits[nan] & 0x8000)
        records[name] = encoded
    return records

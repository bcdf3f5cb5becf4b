"""Build a ``static_ondisk_kv`` file (hash -> float16 values) from a lake table with Spark.

The file is the one ``static_ondisk_kv.parquet_to_file`` writes from the same
sorted, deduplicated rows, byte for byte (see :mod:`laion_spark.kv`), but it is
written from Arrow batches as numpy record arrays instead of a Python loop per
row.

How the keys end up globally sorted with bounded memory on every engine:
Spark does the range partitioning (the shuffle of a global sort) and each range
is sorted inside its task; nothing but one summary row per range goes through
the driver. (Sail neither range-partitions nor keeps a global sort parallel, so
the ranges are computed here.)

1. count the rows (and null keys), and choose ``K = ceil(rows / max_rows_per_range)``;
   with ``K > 1`` the range boundaries are quantiles of a seeded sample of keys;
2. number each row's range (``np.searchsorted`` on the boundaries, in
   ``mapInArrow``) and ``repartition(K, range)``: hash partitioning may put
   several ranges in one task (and none in another), so a task holds the rows
   of the ranges it was given, about ``max_rows_per_range`` each;
3. in each task (``mapInArrow``): sort the rows with numpy (key, then the
   values in the duplicate rule's order), keep the first row of each key,
   encode the records and write each range to ``<staging>/range-NNNNNN.kv``;
   yield one summary row per range (rows, written, dropped, first and last key);
4. on the driver: check the ranges are disjoint and ascending and the count
   (rows in = written + duplicates dropped + null keys rejected), concatenate
   the fragments in range order into ``OUT.partial``, check its size, rename it
   to ``OUT`` and remove the staging folder.

The fragments are plain files written by the tasks: ``staging`` (default
``OUT.staging``) must be a folder the executors can write and the driver can
read, i.e. a shared filesystem path on a cluster.

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
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .kv import record_dtype
from .lake import is_delta, read_table, table_path
from .runs import RunSummary
from .session import LakeSession

ON_DUPLICATE = ("first", "max", "error")
DEFAULT_MAX_ROWS_PER_RANGE = 5_000_000
#: Sampled keys per range when choosing the range boundaries.
SAMPLE_KEYS_PER_RANGE = 256
_SAMPLE_SEED = 20_240_917
_RANGE = "kv_range"
_COPY_BUFFER = 16 << 20
_NUMERIC = (T.FloatType, T.DoubleType, T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
#: One row per key range written by a task (``error``: why it could not be written).
_FRAGMENT_SCHEMA = T.StructType(
    [
        T.StructField("range", T.IntegerType(), False),
        T.StructField("rows", T.LongType(), False),
        T.StructField("written", T.LongType(), False),
        T.StructField("dropped", T.LongType(), False),
        T.StructField("first_key", T.LongType(), True),
        T.StructField("last_key", T.LongType(), True),
        T.StructField("error", T.StringType(), True),
    ]
)
_ARROW_FRAGMENT_SCHEMA = pa.schema(
    [
        pa.field("range", pa.int32(), False),
        *(pa.field(name, pa.int64(), False) for name in ("rows", "written", "dropped")),
        *(pa.field(name, pa.int64()) for name in ("first_key", "last_key")),
        pa.field("error", pa.string()),
    ]
)


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
    first (SQL). ``staging`` is the folder of the per-range fragment files
    (default ``OUT.staging``; on a cluster a shared filesystem path that the
    executors can write and the driver can read); it must not exist, and is
    removed afterwards.
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
    staging_dir = _staging_dir(staging, out)

    counts = rows.agg(F.count(F.lit(1)).alias("rows"), F.count("key").alias("keys")).collect()[0]
    rows_in, keyed = int(counts["rows"]), int(counts["keys"])
    null_keys = rows_in - keyed
    keyed_rows = rows.where(F.col("key").isNotNull())
    if on_duplicate == "error":
        _refuse_duplicates(keyed_rows, name, key_column)
    staging_dir.mkdir(parents=True)
    try:
        bounds = _range_bounds(keyed_rows, keyed, max_rows_per_range)
        writer = _range_writer(str(staging_dir), value_format, value_columns, key_column, on_duplicate)
        fragments = (
            _number_ranges(keyed_rows, bounds)
            .repartition(bounds.shape[0] + 1, _RANGE)
            .mapInArrow(writer, _FRAGMENT_SCHEMA)
            .toArrow()
            .sort_by("range")
            .to_pylist()
        )
        written, dropped = _check_fragments(fragments, keyed, name)
        if rows_in != written + dropped + null_keys:
            raise KVBuildError(
                f"{name}: {rows_in:,} rows counted but {written:,} written + {dropped:,} duplicates dropped + "
                f"{null_keys:,} null keys: the table changed during the build"
            )
        _concatenate(partial, _fragment_files(staging_dir, fragments, dtype.itemsize))
        size = os.path.getsize(partial)
        if size != written * dtype.itemsize:
            raise KVBuildError(f"{partial}: {size:,} bytes on disk, {written * dtype.itemsize:,} expected")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging_dir, ignore_errors=True)  # it did not exist before this build
    return KVBuildResult(
        path=out,
        value_format=value_format,
        record_size=dtype.itemsize,
        rows_in=rows_in,
        rows_written=written,
        duplicates_dropped=dropped,
        null_keys_rejected=null_keys,
        ranges=bounds.shape[0] + 1,
    )


def _is_local(path: str) -> bool:
    return "://" not in path and not path.startswith("dbfs:")


def _staging_dir(staging: str | Path | None, out: Path) -> Path:
    """The absolute fragment folder (tasks may run in other processes, with another working directory)."""
    text = str(staging) if staging is not None else str(out.with_name(out.name + ".staging"))
    if not _is_local(text):
        raise KVBuildError(
            f"staging {text} is a URI: the tasks write fragment files there, give a (shared) filesystem path"
        )
    path = Path(text).absolute()
    if path.exists():
        raise KVBuildError(f"staging folder {path} exists (left by an interrupted build?): remove it first")
    return path


def _fragment_path(staging_dir: Path, number: int) -> Path:
    return staging_dir / f"range-{number:06d}.kv"


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


def _range_bounds(rows: DataFrame, keyed: int, max_rows_per_range: int) -> np.ndarray:
    """Ascending keys splitting ``rows`` into ranges of about ``max_rows_per_range`` rows (none: one range).

    Range ``i`` holds the keys ``bounds[i - 1] <= key < bounds[i]``; the
    bounds are quantiles of a seeded key sample.
    """
    wanted = math.ceil(keyed / max_rows_per_range)
    if wanted <= 1:
        return np.empty(0, dtype=np.int64)
    fraction = min(1.0, SAMPLE_KEYS_PER_RANGE * wanted / keyed)
    sample = np.sort(rows.sample(fraction=fraction, seed=_SAMPLE_SEED).select("key").toArrow()["key"].to_numpy())
    return np.unique(sample[(np.arange(1, wanted) * sample.shape[0]) // wanted]) if sample.shape[0] else sample


def _number_ranges(rows: DataFrame, bounds: np.ndarray) -> DataFrame:
    """``rows`` with the range number of each key (column ``kv_range``)."""
    if not bounds.shape[0]:
        return rows.withColumn(_RANGE, F.lit(0))

    def number(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            at = np.searchsorted(bounds, batch.column(0).to_numpy(zero_copy_only=False), side="right")
            yield batch.append_column(_RANGE, pa.array(at.astype(np.int32)))

    return rows.mapInArrow(number, T.StructType([*rows.schema.fields, T.StructField(_RANGE, T.IntegerType(), False)]))


def _range_writer(
    staging_dir: str, value_format: str, value_columns: list[str], key_column: str, on_duplicate: str
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` task that writes the fragment of each of its ranges and yields their summaries."""

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        batches = [batch for batch in batches if batch.num_rows]
        if not batches:
            return
        table = pa.Table.from_batches(batches)
        keys = table.column("key").to_numpy()
        values = [_values(table.column(f"v{i}")) for i in range(len(value_columns))]
        numbers = table.column(_RANGE).to_numpy()
        order, keys = _row_order(keys, values, on_duplicate)
        values = [v[order] for v in values]
        single = numbers.min() == numbers.max()  # the usual case: one range per task
        numbers = numbers[:1] if single else numbers[order]
        starts = [0] if single else np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]]).tolist()
        ends = [*starts[1:], keys.shape[0]]
        summaries = [
            _write_range(
                Path(staging_dir),
                int(numbers[start]),
                keys[start:end],
                [v[start:end] for v in values],
                value_format,
                value_columns,
                key_column,
            )
            for start, end in zip(starts, ends, strict=True)
        ]
        yield pa.RecordBatch.from_pylist(summaries, schema=_ARROW_FRAGMENT_SCHEMA)

    return write


def _write_range(
    staging_dir: Path,
    number: int,
    keys: np.ndarray,
    values: list[np.ndarray],
    value_format: str,
    value_columns: list[str],
    key_column: str,
) -> dict:
    """Write range ``number`` (rows sorted by key, the row to keep first) to its fragment; its summary."""
    keep = np.ones(keys.shape[0], dtype=bool)
    keep[1:] = keys[1:] != keys[:-1]
    if not keep.all():
        keys, values = keys[keep], [v[keep] for v in values]
    summary = {"range": number, "rows": keep.shape[0], "written": 0, "dropped": 0}
    try:
        records = encode_records(keys, values, value_format, value_columns, key_column)
    except KVBuildError as exc:
        return {**summary, "error": str(exc)}
    _write_fragment(_fragment_path(staging_dir, number), records)
    return {
        **summary,
        "written": keys.shape[0],
        "dropped": keep.shape[0] - keys.shape[0],
        "first_key": int(keys[0]),
        "last_key": int(keys[-1]),
    }


def _row_order(keys: np.ndarray, values: list[np.ndarray], on_duplicate: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows' order, by key then (``first``) ascending or (``max``) descending values, NaN and null last;
    and the keys in that order."""
    order = np.argsort(keys)
    sorted_keys = keys[order]
    if on_duplicate == "error" or not (sorted_keys[1:] == sorted_keys[:-1]).any():
        return order, sorted_keys
    ties = [v if on_duplicate == "first" else -v for v in reversed(values)]  # numpy sorts NaN last, -NaN too
    order = np.lexsort([*ties, keys])
    return order, keys[order]


def _write_fragment(path: Path, records: np.ndarray) -> None:
    """Write ``records`` to ``path`` atomically (a retried task rewrites the same bytes)."""
    scratch = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    with open(scratch, "wb") as sink:
        sink.write(records.data)
    os.replace(scratch, path)


def _check_fragments(fragments: list[dict], keyed: int, name: str) -> tuple[int, int]:
    """Refuse failed, repeated or overlapping ranges, or rows gone missing; (written, dropped)."""
    for fragment in fragments:
        if fragment["error"]:
            raise KVBuildError(f"{name}: {fragment['error']}")
    numbers = [f["range"] for f in fragments]
    if len(set(numbers)) != len(numbers):
        raise KVBuildError(f"{name}: a key range was written by two tasks (ranges {numbers})")
    written = [f for f in fragments if f["written"]]
    for before, after in zip(written, written[1:], strict=False):
        if after["first_key"] <= before["last_key"]:
            raise KVBuildError(
                f"{name}: key range starting at {after['first_key']} overlaps the previous one "
                f"(ending {before['last_key']})"
            )
    rows = sum(f["rows"] for f in fragments)
    if rows != keyed:
        raise KVBuildError(f"{name}: {keyed:,} rows with a key counted but the tasks got {rows:,}")
    return sum(f["written"] for f in fragments), sum(f["dropped"] for f in fragments)


def _fragment_files(staging_dir: Path, fragments: list[dict], record_size: int) -> list[Path]:
    """The fragment file of each non-empty range, in range order, checked to hold its records."""
    paths = []
    for fragment in fragments:
        if not fragment["written"]:
            continue
        path = _fragment_path(staging_dir, fragment["range"])
        expected = fragment["written"] * record_size
        size = path.stat().st_size if path.exists() else None
        if size != expected:
            found = "not found" if size is None else f"{size:,} bytes"
            raise KVBuildError(
                f"fragment {path}: {found}, {expected:,} bytes written by its task "
                f"(staging must be a filesystem path shared by the executors and the driver)"
            )
        paths.append(path)
    return paths


def _concatenate(out: Path, fragments: list[Path]) -> None:
    """Join the ``fragments`` into ``out``: the first is moved there, the others appended."""
    if not fragments:
        out.write_bytes(b"")
        return
    shutil.move(fragments[0], out)
    with open(out, "ab") as sink:
        for fragment in fragments[1:]:
            with open(fragment, "rb") as source:
                shutil.copyfileobj(source, sink, _COPY_BUFFER)


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

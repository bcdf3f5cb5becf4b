"""Build a ``static_ondisk_kv`` file (hash -> float16 values) from a lake table with Spark.

The file is the one ``static_ondisk_kv.parquet_to_file`` writes from the same
sorted, deduplicated rows, byte for byte (see :mod:`laion_spark.kv`), but it is
written from Arrow batches by compiled kernels (:mod:`laion_spark.kv.records`)
instead of a Python loop per row.

How the keys end up globally sorted with bounded memory on every engine:
Spark does the range partitioning (the shuffle of a global sort) and each range
is sorted inside its task; nothing but one summary row per range goes through
the driver. (Sail neither range-partitions nor keeps a global sort parallel, so
the ranges are computed here.)

1. first, one pass as one range: ``coalesce(1)`` (no shuffle) into a task that
   stops reading as soon as it holds more than ``max_rows_per_range`` rows with
   a key (then nothing is written, step 2). A table that fits is built in this
   one Spark job, without a count;
2. otherwise count the rows, choose ``K = ceil(rows with a key /
   max_rows_per_range)`` range boundaries (quantiles of a seeded sample of
   keys), number each row's range in the engine (a binary search of nested ``CASE WHEN``s)
   and ``repartition(K, ...)`` on a key per range chosen so that the engine's
   hash partitioning gives each range a task of its own (a probe of the
   engine's partitioning, :func:`_spread_keys`); where the probe finds none, a
   task holds the rows of the ranges it was given, about
   ``max_rows_per_range`` each;
3. in each task (``mapInArrow``): count and leave out the rows with a null
   key, order the others (:mod:`laion_spark.kv.order`: nothing to do when the
   keys arrive in order, runs reordered when the batches hold disjoint ordered
   runs, else numpy's sort; duplicates then by the values in the
   duplicate rule's order), keep the first row of each key, encode the records
   and write each range to ``<staging>/range-NNNNNN.kv``; yield one summary
   row per range (rows, null keys, written, duplicates dropped, first and last
   key). Sail runs every task at once, as threads of one process: the ordering
   and encoding take a CPU slot (:mod:`laion_spark.engine.cpu_slots`), so at
   most one task per CPU holds its working copies (20M rows on 2 cores: the
   peak memory fell from 1.65 to 1.05 GB);
4. on the driver: check the ranges are disjoint and ascending, that rows in =
   written + duplicates dropped + null keys rejected (and, after step 2, = the
   count), concatenate the fragments in range order into ``OUT.partial``
   (:mod:`laion_spark.kv.concatenate`), check its size, rename it to ``OUT``
   and remove the staging folder.

Step 1 reads at most ``max_rows_per_range`` rows of a larger table; a
DataFrame source whose plan has a shuffle (a join, an aggregation) runs that
shuffle in full before its one task starts, so write such a source to a table
first.

The fragments are plain files written by the tasks: ``staging`` (default
``OUT.staging``) must be a folder the executors can write and the driver can
read, i.e. a shared filesystem path on a cluster.

Values: a null is written as NaN (what ``parquet_to_file`` writes for a pandas
NaN); a finite value too large for its format (``e``: 65504) is an error naming
the column, the hash and the value, as ``struct.pack`` refuses it too. Rows
with a null key cannot be looked up: they are left out and counted.

Duplicate keys (``on_duplicate``): ``first`` keeps, per key, the row whose
values come first in ascending order (value columns left to right, NaN, the
infinities and null last); deterministic on every engine, whatever the file
order; ``max`` keeps the row with the largest values (same order, descending;
NaN, the infinities and null last: a real number is always kept before a
non-finite one, :mod:`laion_spark.lake.finite`); ``error`` refuses the table,
naming a duplicated hash and the counts. Rows whose values hold NaN or an
infinity are written as they are (LAION's format) and counted (``rows_non_finite``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..engine.cpu_slots import cpu_slot
from ..errors import InputError, InvariantError, first_line
from ..lake.finite import finite_or_nan
from ..lake.layout import is_local, table_path
from ..lake.runs import RunSummary, record_run
from ..lake.tables import TableError, TableNotFoundError, WriteConflictError, check_data_files, is_delta, read_table
from ..paths import engine_path
from .concatenate import concatenate
from .order import key_order
from .params import BuildKV
from .reader import record_dtype
from .records import ValueOverflowError, write_records

if TYPE_CHECKING:
    from ..engine.session import LakeSession

#: Sampled keys per range when choosing the range boundaries.
SAMPLE_KEYS_PER_RANGE = 256
#: Candidate partition keys probed per range, at most :data:`_MAX_PROBES` in all (:func:`_spread_keys`).
_PROBES_PER_RANGE = 64
_MAX_PROBES = 1 << 20
_SAMPLE_SEED = 20_240_917
_SAMPLE_BUCKETS = 1 << 30
_RANGE = "kv_range"
_INT64_MIN = -(2**63)
_OWNER = "OWNER"
_log = logging.getLogger(__name__)
_NUMERIC = (T.FloatType, T.DoubleType, T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
#: One row per key range of a task: ``rows`` it got (null keys included), ``written``, duplicate rows
#: ``dropped`` (``on_duplicate="error"``: nothing written), ``duplicate_keys`` and the smallest of them;
#: ``too_large``: the single-range attempt got more rows than one range may hold (nothing written);
#: ``error``: why the range could not be written.
_SUMMARY_FIELDS = [
    ("range", T.IntegerType(), pa.int32(), False),
    *(
        (name, T.LongType(), pa.int64(), False)
        for name in ("rows", "null_keys", "written", "dropped", "duplicate_keys", "non_finite")
    ),
    *((name, T.LongType(), pa.int64(), True) for name in ("first_key", "last_key", "duplicate_example")),
    ("too_large", T.BooleanType(), pa.bool_(), False),
    ("error", T.StringType(), pa.string(), True),
]
_FRAGMENT_SCHEMA = T.StructType([T.StructField(n, spark, null) for n, spark, _, null in _SUMMARY_FIELDS])
_ARROW_FRAGMENT_SCHEMA = pa.schema([pa.field(n, arrow, null) for n, _, arrow, null in _SUMMARY_FIELDS])
_EMPTY_SUMMARY = {n: (False if n == "too_large" else 0 if not null else None) for n, _, _, null in _SUMMARY_FIELDS}


class KVBuildError(InputError):
    """The input table cannot be turned into a KV file (bad column, value, filter or duplicate key)."""


class KVInvariantError(InvariantError):
    """The build lost track of rows or key ranges (the table changed while it was read, a fragment is missing)."""


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
    seconds: float = 0.0
    #: Rows with a key whose values hold NaN or an infinity (written as they are; never preferred to a duplicate).
    non_finite_rows: int = 0

    def format(self) -> str:
        """The run summary, and the file with its row accounting."""
        return "\n".join(
            [
                self.summary().format(),
                f"{self.path}: {self.rows_written:,} records of {self.record_size} bytes (q + {self.value_format}) "
                f"in {self.seconds:.1f} s; rows in {self.rows_in:,} = written {self.rows_written:,} + duplicates "
                f"dropped {self.duplicates_dropped:,} + null keys rejected {self.null_keys_rejected:,}",
            ]
        )

    def summary(self) -> RunSummary:
        """The run summary (rows in = written + duplicates dropped + null keys rejected)."""
        return RunSummary(
            job=BuildKV.command,
            collection="*",
            target=str(self.path),
            metrics={
                "rows_in": self.rows_in,
                "rows_written": self.rows_written,
                "duplicates_dropped": self.duplicates_dropped,
                "null_keys_rejected": self.null_keys_rejected,
                "rows_non_finite": self.non_finite_rows,
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
    if not is_local(text):
        return read_table(lake, text)
    if is_delta(text):
        if lake.table_format != "delta":
            raise KVBuildError(
                f"{text} is a Delta table but this session reads {lake.table_format} (use --table-format delta)"
            )
        return read_table(lake, text)
    path = Path(text)
    if not path.exists():
        raise TableNotFoundError(f"no table at {text}")
    if path.is_dir():
        if not any(path.rglob("*.parquet")):
            raise TableError(f"{text} is neither a Delta table nor a folder of parquet files")
        check_data_files(path)
    else:
        try:
            pq.read_metadata(path).schema.to_arrow_schema()
        except (OSError, pa.ArrowException, ValueError) as err:  # ValueError: a name that is not UTF-8
            raise TableError(f"{text} is not readable parquet ({err})") from None
    return lake.spark.read.parquet(engine_path(text))


def build_kv(lake: LakeSession, stage: BuildKV) -> KVBuildResult:
    """Write the KV file ``stage.out`` from the table ``stage.table`` (:class:`~laion_spark.kv.params.BuildKV`
    lists the parameters); see :func:`write_kv`."""
    return write_kv(lake, stage.table, stage)


def write_kv(lake: LakeSession, source: str | Path | DataFrame, stage: BuildKV) -> KVBuildResult:
    """Write the KV file ``stage.out`` from ``source`` (a table path or a DataFrame; ``stage.table`` is not read).

    ``stage.where`` filters the rows first (SQL). ``stage.staging`` is the folder of the per-range fragment
    files (default ``OUT.staging``; on a cluster a shared filesystem path that the executors can write and
    the driver can read); it must not exist, and is removed afterwards. With ``stage.lake`` the run is
    recorded in its ``runs`` table.

    Raises :class:`KVBuildError` (or a :class:`~laion_spark.lake.TableError`) for
    bad input, before anything is written, and :class:`KVInvariantError` when
    rows or key ranges went missing during the build; ``out`` is then left as it was.
    """
    started = time.perf_counter()
    value_columns, value_format, key_column = list(stage.value_columns), stage.record_format, stage.key_column
    on_duplicate, max_rows_per_range, where = stage.on_duplicate, stage.max_rows_per_range, stage.where
    dtype = record_dtype(value_format)
    name = "the input DataFrame" if isinstance(source, DataFrame) else table_path(source)
    df = source if isinstance(source, DataFrame) else read_source(lake, source)
    if where:
        try:
            df = df.where(where)
            df.schema  # noqa: B018 - analyses the filter now, not in the middle of the build
        except Exception as err:  # noqa: BLE001 - engines raise different types for a bad expression
            raise KVBuildError(f"--where {where!r}: not a valid filter on {name} ({first_line(err)})") from None
    rows = _select_kv_columns(df, name, key_column, value_columns)
    out = Path(stage.out)
    if out.is_dir():
        raise KVBuildError(f"--out {out}: is a folder; give the path of the KV file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    staging_dir = _staging_dir(stage.staging, out)

    _claim_staging(staging_dir)
    try:
        encoding = (str(staging_dir), value_format, value_columns, key_column, on_duplicate)
        # One pass when the rows fit in one range; a task that gets more stops reading at once.
        counted, ranges = None, 1
        fragments = _write_fragments(rows.coalesce(1), _range_writer(*encoding, limit=max_rows_per_range, ranges=1))
        if any(f["too_large"] for f in fragments):
            counts = rows.agg(F.count(F.lit(1)).alias("rows"), F.count("key").alias("keys")).collect()[0]
            counted = int(counts["rows"])
            bounds = _range_bounds(rows.where(F.col("key").isNotNull()), int(counts["keys"]), max_rows_per_range)
            ranges = bounds.shape[0] + 1
            writer = _range_writer(*encoding, limit=None, ranges=ranges)
            fragments = _write_fragments(_partition_ranges(rows, bounds), writer)
        rows_in, written, dropped, null_keys = _check_fragments(fragments, name, key_column, on_duplicate, counted)
        non_finite_rows = sum(f["non_finite"] for f in fragments)
        concatenate(partial, _fragment_files(staging_dir, fragments, dtype.itemsize))
        size = os.path.getsize(partial)
        if size != written * dtype.itemsize:
            raise KVInvariantError(f"{partial}: {size:,} bytes on disk, {written * dtype.itemsize:,} expected")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging_dir, ignore_errors=True)  # it did not exist before this build
    result = KVBuildResult(
        path=out,
        value_format=value_format,
        record_size=dtype.itemsize,
        rows_in=rows_in,
        rows_written=written,
        duplicates_dropped=dropped,
        null_keys_rejected=null_keys,
        ranges=ranges,
        seconds=time.perf_counter() - started,
        non_finite_rows=non_finite_rows,
    )
    if stage.lake is not None:
        record_run(lake, stage.lake, result.summary())
    return result


def _staging_dir(staging: str | Path | None, out: Path) -> Path:
    """The absolute fragment folder (tasks may run in other processes, with another working directory)."""
    text = str(staging) if staging is not None else str(out.with_name(out.name + ".staging"))
    if not is_local(text):
        raise KVBuildError(
            f"staging {text} is a URI: the tasks write fragment files there, give a (shared) filesystem path"
        )
    path = Path(text).absolute()
    if path.exists():
        owner = _staging_owner(path)
        if owner is not None and (owner.get("host") != socket.gethostname() or _alive(int(owner.get("pid", -1)))):
            raise WriteConflictError(
                f"staging folder {path} belongs to a build running on {owner.get('host')} (pid {owner.get('pid')}): "
                "another build of this file is writing now; if it is not, remove the folder"
            )
        _log.info("removing %s, left by an interrupted build", path)
        shutil.rmtree(path)
    return path


def _claim_staging(path: Path) -> None:
    """Create the staging folder with an ``OWNER`` file (host, pid): a later build knows whether it is orphaned."""
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        raise WriteConflictError(f"staging folder {path} was just created by another build of this file") from None
    (path / _OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))


def _staging_owner(path: Path) -> dict | None:
    """The ``OWNER`` record of a staging folder, ``None`` when it has none (a build killed before writing it)."""
    try:
        return json.loads((path / _OWNER).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


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


def _write_fragments(
    rows: DataFrame, writer: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
) -> list[dict]:
    """Run the range writer over ``rows``; the task summaries in range order."""
    return rows.mapInArrow(writer, _FRAGMENT_SCHEMA).toArrow().sort_by("range").to_pylist()


def _range_bounds(rows: DataFrame, keyed: int, max_rows_per_range: int) -> np.ndarray:
    """Ascending keys splitting ``rows`` into ranges of about ``max_rows_per_range`` rows (none: one range).

    Range ``i`` holds the keys ``bounds[i - 1] <= key < bounds[i]``; the
    bounds are quantiles of a sample of about :data:`SAMPLE_KEYS_PER_RANGE`
    keys per range, chosen by a seeded hash of the key: the same on every
    engine and run (Sail's ``DataFrame.sample`` returns no row below a fraction
    of 1e-4).
    """
    wanted = math.ceil(keyed / max_rows_per_range)
    if wanted <= 1:
        return np.empty(0, dtype=np.int64)
    kept = math.ceil(min(1.0, SAMPLE_KEYS_PER_RANGE * wanted / keyed) * _SAMPLE_BUCKETS)
    sampled = rows.where(F.pmod(F.xxhash64("key", F.lit(_SAMPLE_SEED)), F.lit(_SAMPLE_BUCKETS)) < kept)
    sample = np.sort(sampled.select("key").toArrow()["key"].to_numpy())
    if not sample.shape[0]:  # a handful of distinct keys, none sampled: one range (a key is never split)
        return sample
    return np.unique(sample[(np.arange(1, wanted) * sample.shape[0]) // wanted])


def _partition_ranges(rows: DataFrame, bounds: np.ndarray) -> DataFrame:
    """``rows`` with their key range's partition key (``kv_range``; the range is that key modulo the number of
    ranges) and partitioned by it, a task per range where the engine allows (no bounds: one partition).

    The key is computed by the engine (a binary search written as nested ``CASE WHEN``s over the bounds:
    depth ``log2`` of the ranges), so the rows pass through Python once, in the range writer.
    """
    if not bounds.shape[0]:
        return rows.coalesce(1)
    ranges = bounds.shape[0] + 1
    spread = _spread_keys(rows.sparkSession, ranges)
    key = F.coalesce(F.col("key"), F.lit(_INT64_MIN))  # a null key goes to the first range, whose task counts it

    def number(lo: int, hi: int) -> Column:  # ranges lo..hi: how many bounds are <= key
        if lo == hi:
            return F.lit(spread[lo])
        mid = (lo + hi) // 2
        return F.when(key < F.lit(int(bounds[mid])), number(lo, mid)).otherwise(number(mid + 1, hi))

    return rows.withColumn(_RANGE, number(0, ranges - 1).cast("int")).repartition(ranges, _RANGE)


def _spread_keys(spark: SparkSession, ranges: int) -> list[int]:
    """Per range ``i``, a partition key ``i + ranges * j`` that ``repartition(ranges, key)`` sends to a task no
    other range goes to, where one of the probed keys does (else ``i``).

    Hash partitioning of the range numbers themselves puts several ranges in one task and none in others
    (10 ranges of 2M rows on Sail: tasks of 0 to 6M rows), and a task's sort of 4M keys takes 4 times as
    long as one of 2M. The engine's partitioning is probed in one small query: each candidate key's
    ``spark_partition_id`` after the same ``repartition``.
    """
    probes = max(1, min(_PROBES_PER_RANGE, _MAX_PROBES // ranges))
    candidates = spark.range(ranges * probes).select(F.col("id").cast("int").alias(_RANGE))
    found = candidates.repartition(ranges, _RANGE).select(_RANGE, F.spark_partition_id().alias("task")).toArrow()
    task_of = dict(zip(found.column(_RANGE).to_pylist(), found.column("task").to_pylist(), strict=True))
    taken: set[int] = set()
    keys = []
    for number in range(ranges):
        key = next((k for k in range(number, ranges * probes, ranges) if task_of[k] not in taken), number)
        taken.add(task_of[key])
        keys.append(key)
    return keys


def _range_writer(
    staging_dir: str,
    value_format: str,
    value_columns: list[str],
    key_column: str,
    on_duplicate: str,
    *,
    limit: int | None,
    ranges: int,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` task that writes the fragment of each of its ranges (of ``ranges``) and yields their
    summaries.

    Rows with a null key are counted (with the first range) and left out. A
    task that gets more than ``limit`` rows with a key stops reading and
    yields one ``too_large`` summary, having written nothing.
    """

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        kept, null_keys, keyed = [], 0, 0
        for batch in batches:
            if batch.column(0).null_count:
                null_keys += batch.column(0).null_count
                batch = batch.filter(pc.is_valid(batch.column(0)))
            if batch.num_rows:
                kept.append(batch)
                keyed += batch.num_rows
            if limit is not None and keyed > limit:
                yield _summaries([{**_EMPTY_SUMMARY, "rows": keyed + null_keys, "too_large": True}])
                return
        if not kept:
            if null_keys:
                yield _summaries([{**_EMPTY_SUMMARY, "rows": null_keys, "null_keys": null_keys}])
            return
        with cpu_slot():  # Sail runs every task at once, as threads: one per CPU orders and encodes
            summaries = _write_task_ranges(
                kept, null_keys, staging_dir, (value_format, value_columns, key_column), on_duplicate, ranges
            )
        yield _summaries(summaries)

    return write


def _write_task_ranges(
    kept: list[pa.RecordBatch],
    null_keys: int,
    staging_dir: str,
    encoding: tuple[str, list[str], str],
    on_duplicate: str,
    ranges: int,
) -> list[dict]:
    """Order a task's rows with a key (``kept``) and write each of its ranges; their summaries, the first one
    also counting the task's ``null_keys`` and rows with non-finite values. Empties ``kept``: the batches are
    let go as soon as numpy holds the rows."""
    value_columns = len(encoding[1])
    table = pa.Table.from_batches(kept)
    keys = table.column("key").to_numpy()
    values = [_values(table.column(f"v{i}")) for i in range(value_columns)]
    non_finite = _non_finite_rows(table, value_columns)
    numbers = table.column(_RANGE).to_numpy() % ranges if _RANGE in table.column_names else np.zeros(1, np.int32)
    batch_starts = np.cumsum([0, *(batch.num_rows for batch in kept[:-1])])
    del table
    kept.clear()
    order, keys, unique = _row_order(keys, values, on_duplicate, batch_starts)
    if order is not None:
        values = [v[order] for v in values]
    single = numbers.min() == numbers.max()  # the usual case: one range per task
    numbers = numbers[:1] if single else numbers if order is None else numbers[order]
    starts = [0] if single else np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]]).tolist()
    ends = [*starts[1:], keys.shape[0]]
    summaries = [
        _write_range(
            Path(staging_dir),
            int(numbers[start]),
            keys[start:end],
            [v[start:end] for v in values],
            encoding,
            unique=unique,
            refuse_duplicates=on_duplicate == "error",
        )
        for start, end in zip(starts, ends, strict=True)
    ]
    first = summaries[0]
    summaries[0] = {**first, "rows": first["rows"] + null_keys, "null_keys": null_keys, "non_finite": non_finite}
    return summaries


def _summaries(rows: list[dict]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=_ARROW_FRAGMENT_SCHEMA)


def _write_range(
    staging_dir: Path,
    number: int,
    keys: np.ndarray,
    values: list[np.ndarray],
    encoding: tuple[str, list[str], str],
    *,
    unique: bool,
    refuse_duplicates: bool,
) -> dict:
    """Write range ``number`` (rows sorted by key, the row to keep first) to its fragment; its summary.

    With ``refuse_duplicates``, a range with a repeated key is not written:
    its summary counts them.
    """
    summary = {**_EMPTY_SUMMARY, "range": number, "rows": keys.shape[0]}
    if not unique:
        keep = np.ones(keys.shape[0], dtype=bool)
        keep[1:] = keys[1:] != keys[:-1]
        repeated = np.flatnonzero(keep[:-1] & ~keep[1:])  # the first row of each repeated key
        if repeated.size:
            summary.update(
                dropped=keys.shape[0] - int(keep.sum()),
                duplicate_keys=repeated.size,
                duplicate_example=int(keys[repeated[0]]),
            )
            if refuse_duplicates:
                return summary
        keys, values = keys[keep], [v[keep] for v in values]
    try:
        _write_fragment(_fragment_path(staging_dir, number), keys, values, *encoding)
    except ValueOverflowError as exc:
        return {**summary, "dropped": 0, "error": str(exc)}
    return {**summary, "written": keys.shape[0], "first_key": int(keys[0]), "last_key": int(keys[-1])}


def _row_order(
    keys: np.ndarray, values: list[np.ndarray], on_duplicate: str, batch_starts: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray, bool]:
    """``(order, keys[order], unique)``: the rows by key, then (``first``) ascending or (``max``) descending
    values, NaN and null last. ``order`` is ``None`` when the rows are in order already (keys strictly
    increasing); ``unique``: no key repeats."""
    order, sorted_keys = key_order(keys, batch_starts)
    if order is None:
        return None, sorted_keys, True
    duplicated = bool((sorted_keys[1:] == sorted_keys[:-1]).any())
    if not duplicated or on_duplicate == "error":
        return order, sorted_keys, not duplicated
    # numpy sorts NaN last, -NaN too: a non-finite value (NaN or an infinity) made NaN is never preferred
    ties = [finite_or_nan(v) if on_duplicate == "first" else -finite_or_nan(v) for v in reversed(values)]
    order = np.lexsort([*ties, keys])
    return order, keys[order], False


def _write_fragment(path: Path, keys: np.ndarray, values: list[np.ndarray], *encoding: object) -> None:
    """Write the records to ``path`` atomically (a retried task rewrites the same bytes)."""
    scratch = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(scratch, "wb") as sink:
            write_records(sink, keys, values, *encoding)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _check_fragments(
    fragments: list[dict], name: str, key_column: str, on_duplicate: str, counted: int | None
) -> tuple[int, int, int, int]:
    """Refuse failed, repeated or overlapping ranges, duplicates (``on_duplicate="error"``) or rows gone
    missing; ``(rows in, written, dropped, null keys)``."""
    for fragment in fragments:
        if fragment["error"]:
            raise KVBuildError(f"{name}: {fragment['error']}")
    total = {field: sum(f[field] for f in fragments) for field in ("rows", "written", "dropped", "null_keys")}
    repeated = sum(f["duplicate_keys"] for f in fragments)
    if on_duplicate == "error" and repeated:
        example = min(f["duplicate_example"] for f in fragments if f["duplicate_keys"])
        raise KVBuildError(
            f"{name}: {repeated:,} {key_column} values appear more than once ({repeated + total['dropped']:,} "
            f"rows), e.g. {key_column} {example}; choose --on-duplicate first or max to keep one row per key"
        )
    numbers = [f["range"] for f in fragments]
    if len(set(numbers)) != len(numbers):
        raise KVInvariantError(f"{name}: a key range was written by two tasks (ranges {numbers})")
    written = [f for f in fragments if f["written"]]
    for before, after in zip(written, written[1:], strict=False):
        if after["first_key"] <= before["last_key"]:
            raise KVInvariantError(
                f"{name}: key range starting at {after['first_key']} overlaps the previous one "
                f"(ending {before['last_key']})"
            )
    if total["rows"] != total["written"] + total["dropped"] + total["null_keys"]:
        raise KVInvariantError(
            f"{name}: the tasks got {total['rows']:,} rows but wrote {total['written']:,}, dropped "
            f"{total['dropped']:,} duplicates and {total['null_keys']:,} null keys"
        )
    if counted is not None and counted != total["rows"]:
        raise KVInvariantError(
            f"{name}: {counted:,} rows counted but the tasks got {total['rows']:,}: the table changed during the build"
        )
    return total["rows"], total["written"], total["dropped"], total["null_keys"]


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
            raise KVInvariantError(
                f"fragment {path}: {found}, {expected:,} bytes written by its task "
                f"(staging must be a filesystem path shared by the executors and the driver)"
            )
        paths.append(path)
    return paths


def _non_finite_rows(table: pa.Table, value_columns: int) -> int:
    """Rows of ``table`` whose value columns ``v0`` ... hold NaN or an infinity (a null is not counted)."""
    flags = None
    for i in range(value_columns):
        column = table.column(f"v{i}")
        if not pa.types.is_floating(column.type):
            continue
        bad = pc.fill_null(pc.or_(pc.is_nan(column), pc.is_inf(column)), False)
        flags = bad if flags is None else pc.or_(flags, bad)
    return 0 if flags is None else int(pc.sum(flags).as_py() or 0)


def _values(column: pa.ChunkedArray) -> np.ndarray:
    """A value column as float numpy, null as NaN (integers widened to float64 first, as Python's float())."""
    if pa.types.is_integer(column.type):
        column = column.cast(pa.float64())
    return column.to_numpy(zero_copy_only=False)

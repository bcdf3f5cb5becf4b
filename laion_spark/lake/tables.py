"""Reading and writing lake tables (Delta, or Parquet where Delta is unavailable).

The table format comes from the :class:`~laion_spark.engine.LakeSession`; jobs
call these helpers instead of ``df.write.format(...)`` so that partition-scoped
replacement is done the one way that is safe on every engine.

Every local path goes to the engine through :func:`~laion_spark.paths.engine_path` (a path with a space,
``#``, ``?`` or a non-ASCII letter through an alias), so the table lands in the folder named, on every engine.

A table a job reads is checked before the engine touches it: a missing path, a
folder that is not a table, or (for local tables) a data file whose parquet
footer cannot be read is a :class:`TableError` naming the table and the file.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, DataFrameWriter

from ..errors import InputError, LaionSparkError, first_line
from ..paths import engine_path
from .delta_log import live_files
from .layout import is_local, table_path
from .protocol import check_writable, feature_error

if TYPE_CHECKING:
    from ..engine.session import LakeSession

_COMMIT = re.compile(r"^(\d{20})\.json$")
#: The session setting naming the codec of a Parquet lake's files (``conf/spark-defaults.conf``: snappy).
PARQUET_CODEC = "spark.sql.parquet.compression.codec"


class TableError(InputError):
    """A lake table a job needs is missing, is not a table, or has an unreadable file."""


class TableNotFoundError(TableError, FileNotFoundError):
    """No table at the path."""


def is_delta(path: str | Path) -> bool:
    """True when ``path`` is a local folder holding a Delta log."""
    return (Path(str(path)) / "_delta_log").is_dir()


def table_exists(lake: LakeSession, path: str | Path) -> bool:
    """Whether a table in the session's format is at ``path``."""
    text = table_path(path)
    if is_local(text):
        local = Path(text)
        if lake.table_format == "delta":
            return is_delta(local) and any((local / "_delta_log").glob("*.json"))
        return local.is_dir() and any(local.rglob("*.parquet"))
    try:
        lake.spark.read.format(lake.table_format).load(engine_path(text)).schema  # noqa: B018 - reading the schema is what fails for no table
    except Exception:  # noqa: BLE001 - engines raise different types for "no table"
        return False
    return True


def read_table(lake: LakeSession, path: str | Path, version: int | None = None) -> DataFrame:
    """Read a lake table written by :func:`write_table`; ``version`` pins a Delta table's snapshot (time travel),
    so that every action of a job reads the same rows even while another writer commits.

    Raises :class:`TableNotFoundError` when there is no table at ``path`` and
    :class:`TableError` for a local folder that is not a table of the
    session's format or holds a data file that is not readable parquet.
    """
    text = table_path(path)
    if not table_exists(lake, text):
        if is_local(text) and Path(text).exists():
            raise TableError(f"{text} is not a {lake.table_format} table{_not_a_table_hint(Path(text), lake)}")
        raise TableNotFoundError(f"no {lake.table_format} table at {text}")
    if is_local(text):
        check_data_files(Path(text))
    reader = lake.spark.read.format(lake.table_format)
    if version is not None and lake.table_format == "delta":
        reader = reader.option("versionAsOf", version)
    if lake.table_format == "parquet":
        reader = reader.option("mergeSchema", "true")  # files written before a column was added
    return reader.load(engine_path(text))


def _not_a_table_hint(folder: Path, lake: LakeSession) -> str:
    if not folder.is_dir():
        return " (it is a file)"
    if lake.table_format == "delta":
        return " (no _delta_log/ with commits inside)"
    return " (no .parquet files inside)"


def check_data_files(folder: Path) -> None:
    """Read the footer of every data file of a local table; :class:`TableError` names the first bad one.

    Data files are the table's ``*.parquet`` files outside ``_delta_log``; for a
    Delta table only those of its latest version (:func:`live_files`: a file a
    concurrent writer has not committed yet, or one a dead writer left, is no
    part of it), and the newest commit must be valid JSON as well. Footers only:
    this costs a few milliseconds per file, and no data page is read.
    """
    log = folder / "_delta_log"
    commits = sorted(log.glob("*.json")) if log.is_dir() else []
    if commits:
        try:
            for line in commits[-1].read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028 in stats
                if line.strip():
                    json.loads(line)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise TableError(f"{folder}: Delta commit {commits[-1].name} is not readable ({err})") from None
    live = live_files(folder) if commits else None
    for file in sorted(folder.rglob("*.parquet")):
        relative = file.relative_to(folder)
        if "_delta_log" in relative.parts or (live is not None and relative.as_posix() not in live):
            continue
        try:
            pq.read_metadata(file).schema.to_arrow_schema()
        except (OSError, pa.ArrowException, ValueError) as err:  # ValueError: a name that is not UTF-8
            raise TableError(
                f"{folder}: data file {file.relative_to(folder)} is not readable parquet ({err})"
            ) from None


def write_table(
    lake: LakeSession,
    df: DataFrame,
    path: str | Path,
    *,
    mode: str = "append",
    partition_by: Sequence[str] | None = None,
    replace_partition: Mapping[str, str] | None = None,
    replace_rows: str | None = None,
    merge_schema: bool = False,
) -> None:
    """Write ``df`` to the table at ``path``.

    ``replace_partition={"collection": "laion2B-en"}`` replaces just that
    partition and keeps the others (Delta ``replaceWhere``; for Parquet the
    partition folder is removed, then the data appended). ``replace_rows``, a
    SQL predicate on data columns (``shard IN (3, 4)``), narrows the
    replacement to the partition's rows it matches (Delta only; Parquet
    appends). A replacement is one atomic commit, so two writers of the same
    rows, at once or one after the other, leave exactly one copy: the table is
    created empty first when missing, so that even the first writers replace
    rather than append. ``mode`` is ``append`` or ``overwrite`` otherwise;
    ``merge_schema`` lets an append add new columns. A Parquet table's files are
    compressed with the session's :data:`PARQUET_CODEC`, on every engine.

    Raises :class:`WriteConflictError` naming the table when another writer
    committed a conflicting change first (the table is as that writer left it), and
    :class:`TableFeatureError` when the table needs a Delta table feature the engine
    cannot write (before writing anything, where the engine's features are known).
    """
    text = table_path(path)
    check_writable(lake, text)
    writer = df.write.format(lake.table_format)
    if lake.table_format == "parquet":
        # Sail 0.7.2 accepts the setting but writes its own default (zstd); the writer's option reaches every engine.
        codec = lake.spark.conf.get(PARQUET_CODEC, None)
        writer = writer.option("compression", codec) if codec else writer
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    try:
        _write(lake, df, text, writer, partition_by, replace_partition, replace_rows, mode)
    except _UnsupportedFeatures as err:
        raise feature_error(text, err.names, lake.engine) from None


def _write(
    lake: LakeSession,
    df: DataFrame,
    text: str,
    writer: DataFrameWriter,
    partition_by: Sequence[str] | None,
    replace_partition: Mapping[str, str] | None,
    replace_rows: str | None,
    mode: str,
) -> None:
    replacing = bool(replace_partition) or replace_rows is not None
    if replacing and lake.table_format == "delta":
        if not table_exists(lake, text):
            empty = lake.spark.createDataFrame([], df.schema).write.format("delta")
            _save((empty.partitionBy(*partition_by) if partition_by else empty).mode("append"), text)
        clauses = [f"`{k}` = '{_sql_str(v)}'" for k, v in (replace_partition or {}).items()]
        condition = " AND ".join([*clauses, *([f"({replace_rows})"] if replace_rows is not None else [])])
        _save(writer.option("replaceWhere", condition).mode("overwrite"), text)
        return
    if replace_partition and replace_rows is None and table_exists(lake, text):
        _drop_parquet_partition(text, replace_partition)
    _save(writer.mode("append" if replacing else mode), text)


class WriteConflictError(LaionSparkError, RuntimeError):
    """Another writer committed to the table first; this write was not applied. A rerun completes it."""


#: How engines say that a commit lost a race (Sail; delta-spark's Concurrent*/...ChangedException).
_CONFLICT = re.compile(
    r"Failed to commit transaction|Concurrent\w*Exception|MetadataChangedException|ProtocolChangedException"
    r"|DELTA_CONCURRENT|DELTA_METADATA_CHANGED|DELTA_PROTOCOL_CHANGED"
)


#: How engines refuse a table feature they cannot write (Sail; delta-spark's DELTA_UNSUPPORTED_FEATURES_FOR_WRITE).
_UNSUPPORTED = re.compile(
    r"Unsupported table features required: \[([^\]]*)\]"
    r"|Table features must be specified, please specify: ([\w\-, ]+)"
    r"|DELTA_UNSUPPORTED_FEATURES_FOR_WRITE\][^:]*: ([\w\-, ]+)"
)


class _UnsupportedFeatures(Exception):
    """The engine refused the table's features (``names``); :func:`write_table` names the engine."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def _save(writer: DataFrameWriter, path: str) -> None:
    try:
        writer.save(engine_path(path, create=True))
    except Exception as err:
        unsupported = _UNSUPPORTED.search(str(err))
        if unsupported:
            names = next(g for g in unsupported.groups() if g is not None).replace(" ", "").strip(".,")
            raise _UnsupportedFeatures([n for n in names.split(",") if n]) from None
        if _CONFLICT.search(str(err)):
            raise WriteConflictError(
                f"{path}: another writer changed the table while this job wrote it ({_conflict_line(err)}); "
                "nothing of this write was committed: rerun to complete it"
            ) from None
        raise


def _conflict_line(err: BaseException) -> str:
    """The line of an engine's error that names the conflict (classic PySpark's first line is
    ``An error occurred while calling o123.save.``; the Delta exception follows it)."""
    line = next((line for line in str(err).splitlines() if _CONFLICT.search(line)), first_line(err))
    return line.strip().lstrip(": ")[:300]


def delta_version(path: str | Path) -> int | None:
    """The latest commit version of the Delta table at ``path`` (a local path or a URI), ``None`` when it has none.

    Reads the ``_delta_log`` listing only (through ``pyarrow.fs`` for URIs).
    """
    text = table_path(path)
    fs, where = (pafs.LocalFileSystem(), text) if is_local(text) else pafs.FileSystem.from_uri(text)
    listing = fs.get_file_info(pafs.FileSelector(f"{where.rstrip('/')}/_delta_log", allow_not_found=True))
    versions = [int(m[1]) for f in listing if (m := _COMMIT.match(f.base_name))]
    return max(versions) if versions else None


def _drop_parquet_partition(path: str, partition: Mapping[str, str]) -> None:
    """Remove one partition folder of a local Parquet table (Delta does this in its log instead).

    Parquet tables exist for classic Spark without the Delta jars, i.e. local
    tests and laptops; removing the folder, then appending, also clears the
    partition when the new data is empty (dynamic overwrite would keep it).
    """
    if not is_local(path):
        raise TableError(f"{path}: partition replacement on a non-local Parquet table is not supported; use Delta")
    folder = Path(path).joinpath(*(f"{k}={v}" for k, v in partition.items()))
    if folder.is_dir():
        shutil.rmtree(folder)


def _sql_str(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")

"""Tag tables (aesthetic, watermark, safety): reading, selecting rows, deduplicating by hash.

A tag table is parquet (file or folder) or a Delta table with ``hash`` and one
value column. The lake's own ``aesthetic_tags`` also has ``collection`` and
``head``: only the joined collection's rows are used, and one head.

Deduplication rule (as deterministic as LAION's intent, whatever the input
order): one row per hash, keeping the **largest finite** value of each tag (``max``;
null values are ignored, and so are NaN and the infinities, which are counted:
:mod:`laion_spark.lake.finite`). Rows whose hash is null can match no metadata
row; they are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..errors import first_line
from ..lake.columns import spark_columns
from ..lake.finite import finite, finite_or_null, non_finite
from ..lake.layout import table_path
from ..lake.tables import delta_version, is_delta
from ..paths import engine_path
from .sources import JoinInputError, ParquetFiles, check_columns, read_footers, read_schema_ddl

if TYPE_CHECKING:
    from ..engine.session import LakeSession


@dataclass(frozen=True)
class TagSpec:
    """One kind of tag: its name, its column in ``joined`` and the source columns accepted for it."""

    name: str
    column: str
    value_columns: tuple[str, ...]
    head_option: str | None = None


#: The tags of ``joined``; the safety table's ``prediction`` becomes ``punsafe``.
TAGS = {
    "aesthetic": TagSpec("aesthetic", "aesthetic", ("aesthetic",), "--aesthetic-head"),
    "watermark": TagSpec("watermark", "pwatermark", ("pwatermark",)),
    "safety": TagSpec("safety", "punsafe", ("prediction", "punsafe")),
}
_OPTIONAL = {"collection": "string", "head": "string"}


@dataclass(frozen=True)
class TagInput:
    """A tag table to join: parquet files with checked footers, or a Delta table checked when read."""

    spec: TagSpec
    path: Path
    files: ParquetFiles | None
    head: str | None = None

    @property
    def what(self) -> str:
        """How error messages name this table."""
        return f"{self.spec.name} tags {self.path}"


def inspect_tag_table(spec: TagSpec, path: str | Path, head: str | None = None) -> TagInput:
    """Check a parquet tag table's footers now; a table (Delta, or Parquet partitioned into ``key=value``
    folders, as a lake written with ``--table-format parquet``) is checked by :func:`read_tag_table`."""
    tag = TagInput(spec, Path(path), None, head)
    if is_delta(path) or _is_partitioned(Path(path)):
        return tag
    files = read_footers(path, tag.what)
    _check_tag_columns(tag, [(str(f), cols) for f, cols in zip(files.files, files.columns, strict=True)])
    return TagInput(spec, Path(path), files, head)


def read_tag_table(lake: LakeSession, tag: TagInput, collection: str) -> DataFrame:
    """``hash, <tag column>`` rows of ``tag`` for ``collection`` (and the chosen head), not yet deduplicated; a
    Delta table at its latest version now, whatever another writer commits later."""
    if tag.files is None:
        kind = "delta" if is_delta(tag.path) else "parquet"
        try:
            reader = lake.spark.read.format(kind)
            version = delta_version(tag.path) if kind == "delta" else None
            if version is not None:  # one snapshot for the join and every count, while another writer may commit
                reader = reader.option("versionAsOf", version)
            df = reader.load(engine_path(table_path(tag.path)))
            found = spark_columns(df.schema)
        except Exception as err:  # noqa: BLE001 - engines raise different types for an unreadable table
            raise JoinInputError(
                f"{tag.what}: cannot read it as a {kind} table on engine {lake.engine}: {first_line(err)}"
            ) from None
        value, columns = _check_tag_columns(tag, [(str(tag.path), found)])
    else:
        value, columns = _check_tag_columns(
            tag, [(str(f), cols) for f, cols in zip(tag.files.files, tag.files.columns, strict=True)]
        )
        df = lake.spark.read.schema(read_schema_ddl(columns)).parquet(
            *(engine_path(f.resolve()) for f in tag.files.files)
        )
    df = _select_rows(df, tag, columns, collection)
    return df.select(F.col("hash").cast("bigint").alias("hash"), F.col(value).cast("float").alias(tag.spec.column))


def _is_partitioned(folder: Path) -> bool:
    """Whether ``folder`` is a Parquet table split into Hive-style ``key=value`` folders."""
    return folder.is_dir() and any(p.is_dir() and "=" in p.name for p in folder.iterdir())


def combine_tags(frames: Sequence[tuple[TagSpec, DataFrame]]) -> DataFrame:
    """One row per non-null hash of ``frames`` (each from :func:`read_tag_table`): ``hash`` and, per tag (a float),
    its table's largest finite value for the hash, null when the table has no finite value for it or lacks it.

    All tag tables are deduplicated in one aggregation, so the metadata is joined (shuffled) once, whatever the
    number of tag tables; rows whose hash is null leave here. The frame is what the join adds to a metadata row,
    and a table's distinct hashes are its column's non-null values here plus the hashes it has no finite value for
    (:func:`tag_counts`), so one copy of it serves both without deduplicating twice.
    """
    specs = [spec for spec, _ in frames]
    parts = [
        df.where(F.col("hash").isNotNull()).select(
            "hash",
            *[
                (finite_or_null(F.col(s.column)) if s is spec else F.lit(None).cast("float")).alias(s.column)
                for s in specs
            ],
        )
        for spec, df in frames
    ]
    rows = reduce(DataFrame.unionByName, parts)
    return rows.groupBy("hash").agg(*[F.max(s.column).alias(s.column) for s in specs])


def tag_counts(spec: TagSpec, df: DataFrame, combined: DataFrame) -> dict[str, int]:
    """Counts of one tag table (``df``, from :func:`read_tag_table`; ``combined``, :func:`combine_tags` of it and
    the other tables): rows read, rows dropped for a null hash, duplicate rows dropped (rows = distinct hashes kept
    + both drops), and values dropped for being NaN or infinite (of rows with a hash), as ``<tag>_tag_rows``,
    ``<tag>_null_hash_dropped``, ``<tag>_duplicates_dropped`` and ``<tag>_non_finite_dropped``.

    No distinct count over the table: the distinct hashes kept are the non-null values of its column in
    ``combined``, plus, only when the table has rows with a hash but no finite value (null, NaN or infinite;
    the benchmark's tables have none), the hashes of those rows that have no value in ``combined``.
    """
    has_hash = F.col("hash").isNotNull()
    value = F.col(spec.column)
    no_value = has_hash & ~finite(value)  # null, NaN or infinite: the hash may have no value in ``combined``
    row = df.agg(
        F.count(F.lit(1)),
        F.count(F.when(~has_hash, 1)),
        F.count(F.when(has_hash & non_finite(value), 1)),
        F.count(F.when(no_value, 1)),
    ).collect()[0]
    rows, null_hash, non_finite_values, valueless = (int(v or 0) for v in row)
    kept = int(combined.agg(F.count(spec.column)).collect()[0][0] or 0)
    if valueless:
        without_value = combined.where(value.isNull()).select("hash")
        kept += df.where(no_value).select("hash").distinct().join(without_value, "hash", "left_semi").count()
    return {
        f"{spec.name}_tag_rows": rows,
        f"{spec.name}_null_hash_dropped": null_hash,
        f"{spec.name}_duplicates_dropped": rows - null_hash - kept,
        f"{spec.name}_non_finite_dropped": non_finite_values,
    }


def _check_tag_columns(tag: TagInput, sources: list[tuple[str, dict[str, str]]]) -> tuple[str, dict[str, str]]:
    """The value column to use and the columns to read; errors name the table, file and columns."""
    candidates = tag.spec.value_columns
    value = next((c for c in candidates if any(c in cols for _, cols in sources)), candidates[0])
    what = tag.what + (f" (value column: {' or '.join(candidates)})" if len(candidates) > 1 else "")
    columns = check_columns(sources, {"hash": "integer", value: "numeric"}, _OPTIONAL, what)
    if tag.head is not None and "head" not in columns:
        raise JoinInputError(f"{tag.what}: head {tag.head!r} was chosen but the table has no head column")
    return value, columns


def _select_rows(df: DataFrame, tag: TagInput, columns: dict[str, str], collection: str) -> DataFrame:
    """Keep ``collection``'s rows and one head's; error when there are none or the head is ambiguous."""
    keys = [c for c in ("collection", "head") if c in columns]
    if not keys:
        return df
    groups = [(*row[:-1],) for row in df.groupBy(*keys).count().collect()]
    if "collection" in columns:
        present = sorted({str(g[0]) for g in groups})
        groups = [g[1:] for g in groups if g[0] == collection]
        if not groups:
            raise JoinInputError(f"{tag.what}: no rows for collection {collection!r} (it has: {', '.join(present)})")
        df = df.where(F.col("collection") == collection)
    if "head" not in columns:
        return df
    heads = sorted(str(g[0]) for g in groups)
    if tag.head is None and len(heads) > 1:
        how = f"choose one with {tag.spec.head_option}" if tag.spec.head_option else "give a table with one head"
        raise JoinInputError(f"{tag.what}: holds several heads for {collection}: {', '.join(heads)}; {how}")
    chosen = tag.head if tag.head is not None else heads[0]
    if chosen not in heads:
        raise JoinInputError(f"{tag.what}: no rows of head {chosen!r} for {collection} (it has: {', '.join(heads)})")
    return df.where(F.col("head") == chosen)

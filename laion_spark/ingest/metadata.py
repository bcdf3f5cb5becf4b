"""LAION metadata (raw or already joined) read as the ``joined`` columns, with LAION's hash.

Raw metadata (``URL, TEXT, WIDTH, HEIGHT, similarity`` [+ ``LANGUAGE``]) has
WIDTH and HEIGHT swapped and no hash: the hash is computed per Arrow batch in
the executors (:func:`laion_spark.lake.hashing.laion_hash` inside ``mapInArrow``).
The joined variants carry ``hash`` (reused as is) and possibly tag columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType

from ..lake.hashing import laion_hash
from ..lake.tables import is_delta
from ..paths import engine_path
from .params import SWAP_CHOICES
from .sources import JoinInputError, ParquetFiles, check_columns, read_footers, read_schema_ddl

if TYPE_CHECKING:
    from ..engine.session import LakeSession

RAW_REQUIRED = {"URL": "string", "TEXT": "string", "WIDTH": "integer", "HEIGHT": "integer", "similarity": "floating"}
JOINED_REQUIRED = {**RAW_REQUIRED, "hash": "integer"}
#: Tag columns a joined input may already carry (kept unless a tag table replaces them).
TAG_COLUMNS = ("pwatermark", "punsafe", "aesthetic")


@dataclass(frozen=True)
class MetadataInput:
    """Validated metadata files and how to read them."""

    files: ParquetFiles
    columns: dict[str, str]
    joined: bool
    swap: bool

    @property
    def rows(self) -> int:
        """Rows in all files, from their footers."""
        return self.files.rows


def inspect_metadata(path: str | Path, swap_width_height: str = "auto") -> MetadataInput:
    """Validate the footers of the metadata at ``path`` (file or folder) and decide how to read it.

    ``swap_width_height``: ``auto`` swaps WIDTH/HEIGHT back for raw metadata
    (no ``hash`` column) and keeps them for joined variants; ``yes``/``no`` force it.
    """
    what = f"metadata {path}"
    if swap_width_height not in SWAP_CHOICES:
        raise JoinInputError(f"swap_width_height must be one of {', '.join(SWAP_CHOICES)}, got {swap_width_height!r}")
    if is_delta(path):
        raise JoinInputError(f"{what} is a Delta table; give the parquet files of LAION's metadata")
    files = read_footers(path, what)
    sources = [(str(f), cols) for f, cols in zip(files.files, files.columns, strict=True)]
    with_hash = [label for label, cols in sources if "hash" in cols]
    if with_hash and len(with_hash) != len(sources):
        without = [label for label, cols in sources if "hash" not in cols]
        raise JoinInputError(
            f"{what}: some files carry a hash column and some do not (with: {with_hash[0]}; without: {without[0]}); "
            "give raw and joined metadata separately"
        )
    joined = bool(with_hash)
    optional = {"LANGUAGE": "string", **({c: "numeric" for c in TAG_COLUMNS} if joined else {})}
    columns = check_columns(sources, JOINED_REQUIRED if joined else RAW_REQUIRED, optional, what)
    swap = (not joined) if swap_width_height == "auto" else swap_width_height == "yes"
    return MetadataInput(files, columns, joined, swap)


def read_metadata(lake: LakeSession, meta: MetadataInput) -> DataFrame:
    """The metadata as ``URL, TEXT, WIDTH, HEIGHT, similarity, LANGUAGE, hash`` (+ tags a joined input has)."""
    df = lake.spark.read.schema(read_schema_ddl(meta.columns)).parquet(
        *(engine_path(f.resolve()) for f in meta.files.files)
    )
    width, height = ("HEIGHT", "WIDTH") if meta.swap else ("WIDTH", "HEIGHT")
    columns = [
        F.col("URL").cast("string").alias("URL"),
        F.col("TEXT").cast("string").alias("TEXT"),
        F.col(width).cast("int").alias("WIDTH"),
        F.col(height).cast("int").alias("HEIGHT"),
        F.col("similarity").cast("double").alias("similarity"),
        (F.col("LANGUAGE") if "LANGUAGE" in meta.columns else F.lit(None)).cast("string").alias("LANGUAGE"),
    ]
    if not meta.joined:
        return with_laion_hash(df.select(*columns), "hash")
    columns.append(F.col("hash").cast("bigint").alias("hash"))
    columns += [F.col(tag).cast("float").alias(tag) for tag in TAG_COLUMNS if tag in meta.columns]
    return df.select(*columns)


def with_laion_hash(df: DataFrame, name: str) -> DataFrame:
    """``df`` plus a column ``name``: LAION's hash of ``URL`` and ``TEXT``, computed per Arrow batch."""
    schema = StructType([*df.schema.fields, StructField(name, LongType(), True)])
    return df.mapInArrow(_append_hash(name), schema)


def count_hash_mismatches(lake: LakeSession, meta: MetadataInput) -> int:
    """Rows of a joined input whose stored hash differs from LAION's hash of their URL and TEXT (null counts)."""
    stored = read_metadata(lake, meta).select("URL", "TEXT", "hash")
    checked = with_laion_hash(stored, "laion_hash")
    return checked.where(~F.col("hash").eqNullSafe(F.col("laion_hash"))).count()


def _append_hash(name: str) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def append(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            hashes = pa.array(laion_hash(batch.column("URL"), batch.column("TEXT")), pa.int64())
            yield pa.RecordBatch.from_arrays([*batch.columns, hashes], names=[*batch.schema.names, name])

    return append

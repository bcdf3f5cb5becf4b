"""Aesthetic embeddings: the mean L2-normalised CLIP image embedding of each integer score bucket.

LAION published them as ``rating0.npy`` ... ``rating9.npy`` (float32, shape
``(1, d)``, unit length) and uses them to steer retrieval towards pretty images:
``(q + w*a) / ||q + w*a||`` (:func:`guide`).

How they are built here: the shards are dealt to at most
``spark.sql.shuffle.partitions`` Spark tasks where that is a number (Sail in local mode runs every
partition of a job at once, so one task per shard would hold memory in
proportion to the rows); a task memory-maps each of its ``.npy`` files in turn,
normalises the rows, scores them with the head and adds each row to the float64
sum of its bucket ``clip(floor(score), 0, 9)``: bucket 0 holds every score below
1 (negative ones too) and bucket 9 every score from 9 up, as LAION's ratings run
0..9. Rows that cannot be normalised or scored (NaN, infinite or all-zero
embeddings) are rejected and counted, never averaged in. Each task yields 11
small rows for all its shards (10 buckets and the reject count), so what the
driver collects depends on the task count, not on the rows; the driver adds
them up, divides and normalises again. Lake table ``aesthetic_embeddings``, 10 rows per
model and head: ``model string, head string, bucket int, count long,
embedding array<float>`` (null for an empty bucket).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, IntegerType, LongType, StringType, StructField, StructType

from ..errors import InputError, InvariantError
from ..lake.layout import lake_table
from ..lake.runs import RunSummary, record_run
from ..lake.tables import read_table, table_exists, write_table
from .heads import Head, load_head
from .params import EMBEDDINGS_TABLE, AestheticEmbeddings, ExportAestheticEmbeddings
from .shards import Shard, ShardLayoutError, discover_shards

if TYPE_CHECKING:
    from ..engine.session import LakeSession

RATINGS = 10
#: Rows per chunk read from a memory-mapped shard (bounds a task's memory to ~100 MB at d=768).
CHUNK_ROWS = 32_768
_REJECTED = -1
EMBEDDINGS_SCHEMA = StructType(
    [
        StructField("model", StringType()),
        StructField("head", StringType()),
        StructField("bucket", IntegerType()),
        StructField("count", LongType()),
        StructField("embedding", ArrayType(FloatType())),
    ]
)
_PARTIAL_SCHEMA = pa.schema([("bucket", pa.int32()), ("count", pa.int64()), ("sum", pa.list_(pa.float64()))])


def bucket_sums(embeddings: np.ndarray, head: Head, chunk_rows: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray, int]:
    """Per rating bucket, the float64 sum and count of the normalised rows of ``embeddings``, and the rejects.

    Returns ``(sums (10, d), counts (10,), rejected)``; ``counts.sum() + rejected == len(embeddings)``.
    """
    dim = embeddings.shape[1]
    sums = np.zeros((RATINGS, dim), dtype=np.float64)
    counts = np.zeros(RATINGS, dtype=np.int64)
    rejected = 0
    for start in range(0, embeddings.shape[0], chunk_rows):
        chunk = np.asarray(embeddings[start : start + chunk_rows], dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.linalg.norm(chunk, axis=1)
        usable = np.isfinite(norms) & (norms > 0)
        unit = chunk[usable] / norms[usable, None]
        scores = head.score(unit) if len(unit) else np.zeros(0, np.float32)
        scored = np.isfinite(scores)
        rejected += int(len(chunk) - scored.sum())
        unit, scores = unit[scored], scores[scored]
        buckets = np.clip(np.floor(scores), 0, RATINGS - 1).astype(np.int64)
        counts += np.bincount(buckets, minlength=RATINGS)
        for bucket in np.unique(buckets):
            sums[bucket] += unit[buckets == bucket].sum(axis=0, dtype=np.float64)
    return sums, counts, rejected


def _plan(embeddings: Sequence[str | Path], head: Head) -> tuple[list[Shard], int]:
    """Every shard of every folder and their total rows; widths checked against the head (headers only)."""
    shards, total = [], 0
    for root in embeddings:
        for shard in discover_shards(root):
            rows, width = shard.shape()
            if width != head.dim:
                raise ShardLayoutError(f"{shard.npy}: embeddings are {width}-d but head {head.name} expects {head.dim}")
            shards.append(shard)
            total += rows
    return shards, total


def _task_count(lake: LakeSession, shards: int) -> int:
    """Tasks for ``shards`` shards: one per shard, at most ``spark.sql.shuffle.partitions`` when it is a number
    (Databricks' ``auto`` leaves one task per shard: its executors bound how many run at once)."""
    try:
        width = int(lake.spark.conf.get("spark.sql.shuffle.partitions", "200"))
    except ValueError:
        width = shards
    return max(1, min(shards, width))


def _task_partials(shards: Sequence[str], tasks: int, head: Head):
    """The ``mapInArrow`` function: for task ``i``, 10 bucket rows and one reject-count row summed over the
    shards ``shards[i::tasks]``."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for task in batch.column(0).to_pylist():
                sums, counts, rejected = np.zeros((RATINGS, head.dim)), np.zeros(RATINGS, np.int64), 0
                for npy in shards[task::tasks]:
                    shard_sums, shard_counts, shard_rejected = bucket_sums(np.load(npy, mmap_mode="r"), head)
                    sums, counts, rejected = sums + shard_sums, counts + shard_counts, rejected + shard_rejected
                yield pa.RecordBatch.from_pydict(
                    {
                        "bucket": [*range(RATINGS), _REJECTED],
                        "count": [*counts.tolist(), rejected],
                        "sum": [*sums.tolist(), []],
                    },
                    schema=_PARTIAL_SCHEMA,
                )

    return run


def compute_aesthetic_embeddings(
    lake: LakeSession, embeddings: Sequence[str | Path], head: Head
) -> tuple[list[tuple[str, str, int, int, list[float] | None]], RunSummary]:
    """Bucket-mean embeddings of every shard under ``embeddings`` (at most ``spark.sql.shuffle.partitions`` tasks).

    Returns the table rows ``(model, head, bucket, count, embedding)`` and a run summary
    (``shards, rows, rows_bucketed, rows_rejected``).
    """
    shards, rows_in = _plan(embeddings, head)
    tasks = _task_count(lake, len(shards))
    partials = (
        lake.spark.range(0, tasks, 1, tasks)
        .mapInArrow(_task_partials([s.npy for s in shards], tasks, head), "bucket int, count long, sum array<double>")
        .toArrow()
    )
    bucket = partials.column("bucket").to_numpy()
    count = partials.column("count").to_numpy()
    rated = bucket != _REJECTED
    sums = np.zeros((RATINGS, head.dim), dtype=np.float64)
    if rated.any():
        flat = partials.filter(pa.array(rated)).column("sum").combine_chunks().flatten().to_numpy()
        np.add.at(sums, bucket[rated], flat.reshape(-1, head.dim))
    counts = np.bincount(bucket[rated], weights=count[rated], minlength=RATINGS).astype(np.int64)
    rejected = int(count[~rated].sum())
    summary = RunSummary(job="aesthetic-embeddings", collection="*", target="aesthetic_embeddings")
    summary.metrics = {
        "shards": len(shards),
        "rows": rows_in,
        "rows_bucketed": int(counts.sum()),
        "rows_rejected": rejected,
    }
    if int(counts.sum()) + rejected != rows_in:
        raise InvariantError(
            f"aesthetic embeddings: {rows_in} rows in the shards but {counts.sum()} bucketed + {rejected} rejected "
            "(a shard changed while it was read?)",
            summary,
        )
    rows = []
    for b in range(RATINGS):
        mean = sums[b] / counts[b] if counts[b] else None
        unit = (mean / np.linalg.norm(mean)).astype(np.float32).tolist() if mean is not None else None
        rows.append((head.model, head.name, b, int(counts[b]), unit))
    return rows, summary


def build_aesthetic_embeddings(lake: LakeSession, stage: AestheticEmbeddings) -> RunSummary:
    """Compute the bucket means of ``stage.embeddings`` and replace this model and head's rows of
    ``<stage.lake>/aesthetic_embeddings``; with ``stage.export``, write its ``rating{N}.npy`` files there too.

    The table is tiny (10 rows per head), so the other heads' rows are read to the driver and the
    whole table is rewritten: Sail's ``replaceWhere`` fails on tables with array columns. Returns the run
    summary; raises the errors of :func:`compute_aesthetic_embeddings` and :func:`export_aesthetic_embeddings`.
    """
    head = load_head(stage.head)
    rows, summary = compute_aesthetic_embeddings(lake, stage.embeddings, head)
    lake_dir = stage.lake
    path = lake_table(lake_dir, EMBEDDINGS_TABLE)
    kept: list[tuple[str, str, int, int, list[float] | None]] = []
    if table_exists(lake, path):
        other = (F.col("model") != F.lit(head.model)) | (F.col("head") != F.lit(head.name))
        for row in read_table(lake, path).where(other).toPandas().itertuples():
            embedding = None if row.embedding is None else np.asarray(row.embedding, dtype=np.float32).tolist()
            kept.append((row.model, row.head, int(row.bucket), int(row.count), embedding))
    frame = lake.spark.createDataFrame(kept + rows, schema=EMBEDDINGS_SCHEMA).coalesce(1)
    write_table(lake, frame, path, mode="overwrite")
    record_run(lake, lake_dir, summary)
    if stage.export is not None:
        export_aesthetic_embeddings(lake, ExportAestheticEmbeddings(lake=lake_dir, out=stage.export, head=head.name))
    return summary


def export_aesthetic_embeddings(lake: LakeSession, stage: ExportAestheticEmbeddings) -> dict[int, Path]:
    """Write ``rating{N}.npy`` (float32, shape ``(1, d)``, like LAION's files) for each non-empty bucket into
    ``stage.out``.

    ``stage.head`` picks the head's rows when the table holds several. Returns ``{bucket: path}`` and records
    the run (job ``export-aesthetic-embeddings``). Raises :class:`~laion_spark.errors.InputError` for a
    head that is missing or not chosen, or an ``out`` that is a file.
    """
    out, lake_dir, head = Path(stage.out), stage.lake, stage.head
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    table = read_table(lake, lake_table(lake_dir, EMBEDDINGS_TABLE)).toPandas()
    heads = sorted(table["head"].unique())
    if head is None:
        if len(heads) != 1:
            raise InputError(f"aesthetic_embeddings holds heads {heads}; choose one with --head")
        head = heads[0]
    if head not in heads:
        raise InputError(f"--head {head}: aesthetic_embeddings has no rows of this head; it holds {heads}")
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for row in table[table["head"] == head].sort_values("bucket").itertuples():
        if row.count == 0 or row.embedding is None:
            continue
        path = out / f"rating{row.bucket}.npy"
        np.save(path, np.asarray(row.embedding, dtype=np.float32).reshape(1, -1))
        written[int(row.bucket)] = path
    summary = RunSummary(job=stage.command, collection="*", target=str(out))
    summary.metrics = {"files": len(written), "buckets_empty": RATINGS - len(written)}
    record_run(lake, lake_dir, summary)
    return written


def guide(query: np.ndarray, aesthetic: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """Retrieval guidance ``(q + w*a) / ||q + w*a||`` for a query (d,) or queries (n, d); float32."""
    q = np.asarray(query, dtype=np.float64)
    a = np.asarray(aesthetic, dtype=np.float64).reshape(-1)
    if q.shape[-1] != a.shape[0]:
        raise ValueError(f"query width {q.shape[-1]} differs from the aesthetic embedding's {a.shape[0]}")
    combined = q + weight * a
    norms = np.linalg.norm(combined, axis=-1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError("query + weight * aesthetic has zero or non-finite length; cannot normalise")
    return (combined / norms).astype(np.float32)

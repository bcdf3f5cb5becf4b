"""Image embeddings and scores of one tar, inside a Spark task: reader -> decoder -> model -> head -> writer.

:func:`embed_tar` is the mapper of clip-retrieval's reader/mapper/writer split, run where the tar is
read: it takes the tar's samples in chunks of the inference batch size, decodes chunk ``k + 1`` while
the model runs on chunk ``k`` (decoding is the usual bottleneck), embeds the images that decoded
(L2-normalised), scores them with the head, and hashes ``url + caption`` with LAION's hash. Every sample
gives one row (:data:`ROWS_SCHEMA`): a score, or a null score and an error string.

:func:`account` adds what img2dataset's listing of the tar says (:mod:`~laion_spark.clip.listing`): its
record of each sample (url, status, sha256, sizes, additional columns), and one failed row for every URL it
lists that is not in the tar, so that the tar's rows are the listing's rows.

:func:`score_tar_task` is a task of :func:`~laion_spark.lake.shard_commits.map_tasks`: it runs
:func:`embed_tar` and :func:`account` on its tar, writes the embedding shard (when asked) and the tar's rows
to the staging folder, each atomically, and yields one summary row (:data:`SUMMARY_SCHEMA`). A tar that
changed since the driver planned the run, or whose listing cannot be read, is not staged: its summary row
says why (``problem``), and the driver refuses it. The model comes from the process-wide cache, built
inside the worker on first use.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..aesthetic.heads import Head
from ..lake.hashing import laion_hash
from .batching import InferenceBatches
from .decode import GpuJpegDecoder, PendingChunk, TensorPreprocess, ThreadDecoder
from .listing import MISSING_FROM_TAR, SUCCESS, Extra, failure, read_listing
from .model import ClipModel, ModelSpec, load_model
from .params import ScoreImages
from .progress import TarProgress
from .reader import RECORD_FIELDS, TarSample, TarShard, error
from .writer import EMBEDDING_METADATA, write_embedding_shard, write_rows

NON_FINITE = "non_finite"

#: One row per sample of a tar (then one per URL its listing adds), as staged for the lake commit; the job's
#: additional columns (:attr:`ImageJob.extras`) follow. ``before_tar``: img2dataset failed it (not in the tar).
ROWS_SCHEMA = pa.schema(
    [
        ("hash", pa.int64()),
        ("aesthetic", pa.float32()),
        ("key", pa.string()),
        ("caption", pa.string()),
        *[(name, pa.string() if kind == "text" else pa.int32()) for name, kind in RECORD_FIELDS.items()],
        ("error", pa.string()),
        ("before_tar", pa.bool_()),
    ]
)
#: One row per tar: what the task did (``problem``: why it staged nothing, null when it did).
SUMMARY_SCHEMA = pa.schema(
    [
        ("shard", pa.int64()),
        ("rows", pa.int64()),
        ("embedded", pa.int64()),
        ("failed", pa.int64()),
        ("read_s", pa.float64()),
        ("decode_s", pa.float64()),
        ("infer_s", pa.float64()),
        ("write_s", pa.float64()),
        ("problem", pa.string()),
    ]
)
SUMMARY_DDL = (
    "shard long, rows long, embedded long, failed long, read_s double, decode_s double, infer_s double, "
    "write_s double, problem string"
)


@dataclass(frozen=True)
class TarTask:
    """A tar to score: its identity (resolved path, size, modification time in ns), its shard number (derived
    from the path: the ``shard`` of its lake rows), img2dataset's listing of it when there is one, and the
    number of its embedding files when the run writes them."""

    index: int
    path: str
    size: int
    mtime_ns: int
    listing: str | None = None
    embedding: int | None = None

    @property
    def name(self) -> str:
        """The tar's file name."""
        return Path(self.path).name

    @property
    def version(self) -> str:
        """A digest of the tar's identity: its staged rows are of this version of it."""
        return hashlib.sha256(f"{self.path}\0{self.size}\0{self.mtime_ns}".encode()).hexdigest()[:16]

    def changed(self) -> str | None:
        """Why the file on disk is no longer this version of the tar (gone, other size or time), or ``None``."""
        try:
            stat = os.stat(self.path)
        except OSError as err:
            return f"{self.path}: no longer readable ({err.strerror})"
        if (stat.st_size, stat.st_mtime_ns) != (self.size, self.mtime_ns):
            return f"{self.path}: changed on disk while this run read it; rerun"
        return None


@dataclass(frozen=True)
class ImageJob:
    """What every task of a ``score-images`` run needs (no data; pickled into the tasks): the stage's
    parameters, and what the driver made of them."""

    stage: ScoreImages
    spec: ModelSpec
    head: Head
    staging: str
    embeddings: str | None
    extras: tuple[Extra, ...] = ()
    device: str | None = None

    def staged(self, task: TarTask) -> Path:
        """The staging file of a tar's rows (of its current version)."""
        return Path(self.staging) / f"rows_{task.version}.parquet"


@dataclass
class TarResult:
    """The rows of a tar (:data:`ROWS_SCHEMA`), the embeddings of its embedded rows, and its progress."""

    rows: pa.Table
    embeddings: np.ndarray
    progress: TarProgress

    @property
    def embedded(self) -> np.ndarray:
        """Mask of the rows that have an embedding and a score."""
        return self.rows.column("error").is_null().to_numpy(zero_copy_only=False)


def make_decoder(
    clip: ClipModel, threads: int, timeout: float, gpu_decode: bool = True
) -> ThreadDecoder | GpuJpegDecoder:
    """The GPU JPEG decoder (PIL threads for the rest) when the model is on CUDA and ``gpu_decode``, else the
    PIL thread pool."""
    pool = ThreadDecoder(clip.preprocess, threads=threads, timeout=timeout)
    tensor = TensorPreprocess(clip.preprocess_cfg)
    if gpu_decode and clip.device.startswith("cuda") and tensor.supported:
        return GpuJpegDecoder(tensor, pool, clip.device)
    return pool


def _input_size(clip: ClipModel) -> tuple[int, int]:
    size = clip.preprocess_cfg.get("size", 224)
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def embed_tar(
    path: str | Path,
    clip: ClipModel,
    head: Head,
    *,
    batch_size: int,
    threads: int = 0,
    timeout: float = 30.0,
    batches: InferenceBatches | None = None,
    gpu_decode: bool = True,
) -> TarResult:
    """Embed and score every sample of the tar at ``path``; see the module docstring.

    A sample that cannot be embedded (:mod:`~laion_spark.clip.reader` and :mod:`~laion_spark.clip.decode`
    error kinds, or ``non_finite`` for an embedding with NaN/inf) gets a null score and its error string.
    ``gpu_decode=False`` decodes JPEGs with PIL threads even when the model is on a GPU.
    """
    decoder = make_decoder(clip, threads, timeout, gpu_decode)
    batches = batches or InferenceBatches(batch_size, "images")
    size = _input_size(clip)
    parts: list[tuple[list[TarSample], np.ndarray, list[str | None], np.ndarray]] = []
    with TarShard(path) as shard:
        progress = TarProgress(Path(shard.path).name, len(shard))
        samples = shard.samples()

        def read() -> tuple[list[TarSample], float, PendingChunk | None]:
            started = time.perf_counter()
            chunk = list(itertools.islice(samples, batch_size))
            seconds = time.perf_counter() - started
            if not chunk:
                return chunk, seconds, None
            pending = decoder.submit([s.image for s in chunk], [s.image_type for s in chunk], size)
            return chunk, seconds, pending

        try:
            chunk, read_s, pending = read()
            while pending is not None:
                following, next_read_s, next_pending = read()  # decode of the next chunk overlaps inference
                decoded = pending.result()
                started = time.perf_counter()
                pixels = decoded.pixels
                outputs = batches.run(len(decoded.rows), lambda a, b, p=pixels: clip.encode_images(p[a:b]))
                emb = np.concatenate(outputs) if outputs else np.zeros((0, clip.image_dim), np.float32)
                scores = head.score(emb) if len(emb) else np.zeros(0, np.float32)
                infer_s = time.perf_counter() - started
                parts.append(_chunk_rows(chunk, decoded.rows, decoded.errors, emb, scores))
                progress.chunk(len(chunk), read=read_s, decode=decoded.seconds, infer=infer_s)
                chunk, read_s, pending = following, next_read_s, next_pending
        finally:
            decoder.close()
    return _tar_result(parts, clip.image_dim, progress)


def _chunk_rows(
    chunk: list[TarSample], rows: list[int], errors: dict[int, str], emb: np.ndarray, scores: np.ndarray
) -> tuple[list[TarSample], np.ndarray, list[str | None], np.ndarray]:
    """Per sample of a chunk: its score (NaN when none) and error; the embeddings of the embedded rows."""
    score = np.full(len(chunk), np.nan, np.float32)
    score[rows] = scores
    messages: list[str | None] = []
    for i, sample in enumerate(chunk):
        if sample.error is not None:
            messages.append(sample.error)
        elif i in errors:
            messages.append(errors[i])
        elif not np.isfinite(score[i]):
            messages.append(error(NON_FINITE, "the embedding holds NaN/inf or is all zero"))
        else:
            messages.append(None)
    keep = np.isfinite(scores)
    return chunk, score, messages, emb[keep]


def _tar_result(
    parts: Sequence[tuple[list[TarSample], np.ndarray, list[str | None], np.ndarray]], dim: int, progress: TarProgress
) -> TarResult:
    samples = [s for part in parts for s in part[0]]
    messages = [m for part in parts for m in part[2]]
    scores = np.concatenate([part[1] for part in parts]) if parts else np.zeros(0, np.float32)
    embeddings = np.concatenate([part[3] for part in parts]) if parts else np.zeros((0, dim), np.float32)
    urls = pa.array([s.url for s in samples], pa.string())
    captions = pa.array([s.caption for s in samples], pa.string())
    failed = pa.array([m is not None for m in messages], pa.bool_())
    columns = {
        "hash": pa.array(laion_hash(urls, captions), pa.int64()),
        "aesthetic": pa.array(scores, pa.float32(), mask=failed.to_numpy(zero_copy_only=False)),
        "key": pa.array([s.key for s in samples], pa.string()),
        "caption": captions,
        **{
            name: pa.array([s.record.get(name) for s in samples], ROWS_SCHEMA.field(name).type)
            for name in RECORD_FIELDS
        },
        "error": pa.array(messages, pa.string()),
        "before_tar": pa.array([False] * len(samples), pa.bool_()),
    }
    return TarResult(pa.table(columns, schema=ROWS_SCHEMA), embeddings, progress)


def account(rows: pa.Table, listing: pa.Table | None, tar: str, extras: Sequence[Extra] = ()) -> pa.Table:
    """A tar's rows (:data:`ROWS_SCHEMA`, as :func:`embed_tar` gives them) with what its img2dataset ``listing``
    (:func:`~laion_spark.clip.listing.read_listing`, or ``None``) says, and the ``extras`` columns.

    A listed sample takes the listing's record (url, status, error message, sha256, exif, sizes, additional
    columns); its caption stays the tar's ``.txt``. Every listed URL the tar lacks is appended, in listing
    order, as a failed row: img2dataset's failure (``not_downloaded`` ...; ``before_tar``), or
    ``missing_from_tar`` for a success the tar does not hold. ``hash`` is LAION's hash of the final url and
    caption. Returns the rows in the order of ``rows``, then the appended ones; ``tar`` names the tar in errors.
    """
    columns = rows.to_pydict()
    added = {e.column: [None] * rows.num_rows for e in extras}
    if listing is not None:
        listed = listing.to_pylist()
        where = {row["key"]: i for i, row in enumerate(listed)}
        used = set()
        for i, key in enumerate(columns["key"]):
            j = where.get(key)
            if j is None:
                continue
            used.add(j)
            for name in RECORD_FIELDS:
                columns[name][i] = listed[j][name]
            for extra in extras:
                added[extra.column][i] = listed[j][extra.name]
        for j, row in enumerate(listed):
            if j in used:
                continue
            if row["status"] == SUCCESS:
                kind, detail = (
                    MISSING_FROM_TAR,
                    f"{tar}/{row['key']}: img2dataset recorded it in the tar, which lacks it",
                )
            else:
                kind, detail = failure(row["status"], row["error_message"])
            values = {"key": row["key"], "caption": row["caption"], "aesthetic": None, "hash": None}
            values |= {name: row[name] for name in RECORD_FIELDS}
            values |= {"error": error(kind, detail), "before_tar": row["status"] != SUCCESS}
            for name, value in values.items():
                columns[name].append(value)
            for extra in extras:
                added[extra.column].append(row[extra.name])
    table = pa.table(columns, schema=ROWS_SCHEMA)
    hashes = laion_hash(table.column("url").combine_chunks(), table.column("caption").combine_chunks())
    table = table.set_column(0, "hash", pa.array(hashes, pa.int64()))
    for extra in extras:
        table = table.append_column(pa.field(extra.column, extra.type), pa.array(added[extra.column], extra.type))
    return table


def embedding_metadata(rows: pa.Table, extras: Sequence[Extra] = ()) -> pa.Table:
    """The embedding shard's metadata of ``rows`` (staged rows): :data:`~laion_spark.clip.writer.EMBEDDING_METADATA`
    (clip-retrieval's names: ``image_path`` is the sample's key, as clip-retrieval writes for a webdataset), then
    the additional columns under their own names (their lake name where one clashes with a metadata column)."""
    columns = {"image_path": rows.column("key"), **{n: rows.column(n) for n in EMBEDDING_METADATA.names[1:]}}
    table = pa.table(columns, schema=EMBEDDING_METADATA)
    for extra in extras:
        name = extra.name if extra.name not in EMBEDDING_METADATA.names else extra.column
        table = table.append_column(pa.field(name, extra.type), rows.column(extra.column))
    return table


def score_tar(task: TarTask, job: ImageJob, clip: ClipModel) -> dict[str, float | int | str | None]:
    """Embed one tar, account for its listing, write its embedding shard (when ``job.embeddings``) and staged rows;
    its summary row. A tar that changed since the run was planned, or whose listing cannot be read, is not staged:
    the row's ``problem`` says why."""
    idle = {"shard": task.index, "rows": 0, "embedded": 0, "failed": 0, "read_s": 0.0, "decode_s": 0.0}
    idle |= {"infer_s": 0.0, "write_s": 0.0}
    if (problem := task.changed()) is not None:
        return {**idle, "problem": problem}
    listing = None
    if task.listing is not None:
        try:
            listing = read_listing(task.listing, job.extras)
        except (OSError, pa.ArrowException, ValueError) as err:
            return {**idle, "problem": f"{task.listing}: img2dataset's listing of {task.name} cannot be read ({err})"}
    result = embed_tar(
        task.path,
        clip,
        job.head,
        batch_size=job.stage.batch_size,
        threads=job.stage.threads,
        timeout=job.stage.decode_timeout,
        gpu_decode=job.stage.gpu_decode,
    )
    if (problem := task.changed()) is not None:
        return {**idle, "problem": problem}
    started = time.perf_counter()
    rows = account(result.rows, listing, task.name, job.extras)
    embedded = rows.column("error").is_null().to_numpy(zero_copy_only=False)
    if job.embeddings is not None:
        if task.embedding is None:
            raise ValueError(f"{task.path}: the run writes embeddings but the tar has no embedding number")
        metadata = embedding_metadata(rows.filter(pa.array(embedded)), job.extras)
        write_embedding_shard(job.embeddings, task.embedding, result.embeddings, metadata)
    write_rows(job.staged(task), rows)  # last: a staged tar has its embedding shard
    count = int(embedded.sum())
    result.progress.finished(count, rows.num_rows - count, time.perf_counter() - started)
    return {
        "shard": task.index,
        "rows": rows.num_rows,
        "embedded": count,
        "failed": rows.num_rows - count,
        **{f"{step}_s": seconds for step, seconds in result.progress.seconds.items()},
        "problem": None,
    }


def score_tar_task(task: TarTask, *, job: ImageJob) -> Iterator[pa.RecordBatch]:
    """A task of :func:`~laion_spark.lake.shard_commits.map_tasks`: :func:`score_tar` of one tar with the
    process-wide cached model, as its summary row."""
    clip = load_model(job.spec, job.device)
    yield pa.RecordBatch.from_pylist([score_tar(task, job, clip)], schema=SUMMARY_SCHEMA)

"""Image embeddings and scores of one tar, inside a Spark task: reader -> decoder -> model -> head -> writer.

:func:`embed_tar` is the mapper of clip-retrieval's reader/mapper/writer split, run where the tar is
read: it takes the tar's samples in chunks of the inference batch size, decodes chunk ``k + 1`` while
the model runs on chunk ``k`` (decoding is the usual bottleneck), embeds the images that decoded
(L2-normalised), scores them with the head, and hashes ``url + caption`` with LAION's hash. Every sample
gives one row (:data:`ROWS_SCHEMA`): a score, or a null score and an error string.

:func:`score_tar_task` is a task of :func:`~laion_spark.lake.shard_commits.map_tasks`: it runs
:func:`embed_tar` on its tar, writes the embedding shard (when asked) and the tar's rows to the staging
folder, each atomically, and yields one summary row (:data:`SUMMARY_SCHEMA`). The model comes from the process-wide cache, built
inside the worker on first use.
"""

from __future__ import annotations

import itertools
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
from .model import ClipModel, ModelSpec, load_model
from .params import ScoreImages
from .progress import TarProgress
from .reader import TarSample, TarShard, error
from .writer import write_embedding_shard, write_rows

NON_FINITE = "non_finite"

#: One row per sample of a tar, as staged for the lake commit.
ROWS_SCHEMA = pa.schema(
    [
        ("hash", pa.int64()),
        ("aesthetic", pa.float32()),
        ("key", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("error", pa.string()),
    ]
)
#: One row per tar: what the task did.
SUMMARY_SCHEMA = pa.schema(
    [
        ("shard", pa.int32()),
        ("rows", pa.int64()),
        ("embedded", pa.int64()),
        ("failed", pa.int64()),
        ("read_s", pa.float64()),
        ("decode_s", pa.float64()),
        ("infer_s", pa.float64()),
        ("write_s", pa.float64()),
    ]
)
SUMMARY_DDL = (
    "shard int, rows long, embedded long, failed long, read_s double, decode_s double, infer_s double, write_s double"
)


@dataclass(frozen=True)
class TarTask:
    """A tar to score and its shard number (the number in its output file names and lake rows)."""

    index: int
    path: str


@dataclass(frozen=True)
class ImageJob:
    """What every task of a ``score-images`` run needs (no data; pickled into the tasks): the stage's
    parameters, and what the driver made of them."""

    stage: ScoreImages
    spec: ModelSpec
    head: Head
    staging: str
    embeddings: str | None
    device: str | None = None

    def staged(self, index: int) -> Path:
        """The staging file of shard ``index``'s rows."""
        return Path(self.staging) / f"rows_{index:04d}.parquet"


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
        "url": urls,
        "caption": captions,
        "width": pa.array([s.size("width") for s in samples], pa.int32()),
        "height": pa.array([s.size("height") for s in samples], pa.int32()),
        "error": pa.array(messages, pa.string()),
    }
    return TarResult(pa.table(columns, schema=ROWS_SCHEMA), embeddings, progress)


def score_tar(task: TarTask, job: ImageJob, clip: ClipModel) -> dict[str, float | int]:
    """Embed one tar, write its embedding shard (when ``job.embeddings``) and staged rows; its summary row."""
    result = embed_tar(
        task.path,
        clip,
        job.head,
        batch_size=job.stage.batch_size,
        threads=job.stage.threads,
        timeout=job.stage.decode_timeout,
        gpu_decode=job.stage.gpu_decode,
    )
    started = time.perf_counter()
    if job.embeddings is not None:
        metadata = result.rows.filter(pa.array(result.embedded))
        write_embedding_shard(job.embeddings, task.index, result.embeddings, metadata)
    write_rows(job.staged(task.index), result.rows)  # last: a staged tar has its embedding shard
    embedded = int(result.embedded.sum())
    result.progress.finished(embedded, result.rows.num_rows - embedded, time.perf_counter() - started)
    return {
        "shard": task.index,
        "rows": result.rows.num_rows,
        "embedded": embedded,
        "failed": result.rows.num_rows - embedded,
        **{f"{step}_s": seconds for step, seconds in result.progress.seconds.items()},
    }


def score_tar_task(task: TarTask, *, job: ImageJob) -> Iterator[pa.RecordBatch]:
    """A task of :func:`~laion_spark.lake.shard_commits.map_tasks`: :func:`score_tar` of one tar with the
    process-wide cached model, as its summary row."""
    clip = load_model(job.spec, job.device)
    yield pa.RecordBatch.from_pylist([score_tar(task, job, clip)], schema=SUMMARY_SCHEMA)

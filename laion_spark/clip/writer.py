"""Files a task writes: embedding shards in LAION's parquet_npy layout, and its tar's rows for the lake commit.

Embedding shards (what ``score-embeddings`` and embedding-reader read back):
``<root>/img_emb/img_emb_XXXX.npy`` -- float16, rows L2-normalised before the cast -- and
``<root>/metadata/metadata_XXXX.parquet`` with :data:`EMBEDDING_METADATA` columns, the same rows in the
same order. ``XXXX`` is the tar's shard number (:func:`laion_spark.clip.job.shard_numbers`), so names
are deterministic: a rerun or a retried task writes the same files. Failed samples have no embedding
and are not in the shard (they are in the lake's ``image_errors``).

Every file is written under a temporary name in its own folder and renamed into place, so a reader never
sees a half-written file, and a killed task leaves none behind under a final name.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Columns of an embedding shard's metadata file (``width``/``height`` as img2dataset recorded them).
EMBEDDING_METADATA = pa.schema(
    [
        ("url", pa.string()),
        ("caption", pa.string()),
        ("key", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary path)`` in ``path``'s folder, then rename the file to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def shard_files(root: str | Path, index: int) -> tuple[Path, Path]:
    """The ``.npy`` and metadata paths of shard ``index`` under ``root``."""
    root = Path(root)
    return root / "img_emb" / f"img_emb_{index:04d}.npy", root / "metadata" / f"metadata_{index:04d}.parquet"


def write_embedding_shard(
    root: str | Path, index: int, embeddings: np.ndarray, metadata: pa.Table
) -> tuple[Path, Path]:
    """Write shard ``index``: ``embeddings`` (n x d) re-normalised and cast to float16, and ``metadata``.

    ``metadata`` must have :data:`EMBEDDING_METADATA`'s columns and ``n`` rows (``ValueError`` otherwise).
    The metadata is renamed into place after the ``.npy``; both names are final only once complete.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] != metadata.num_rows:
        raise ValueError(f"shard {index}: {embeddings.shape} embeddings for {metadata.num_rows} metadata rows")
    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(norms > 0, emb / norms, emb).astype(np.float16)
    npy, parquet = shard_files(root, index)
    table = metadata.select(EMBEDDING_METADATA.names).cast(EMBEDDING_METADATA)

    def save_npy(path: Path) -> None:
        with path.open("wb") as handle:
            np.save(handle, unit)

    write_atomically(npy, save_npy)
    write_atomically(parquet, lambda path: pq.write_table(table, path))
    return npy, parquet


def write_rows(path: str | Path, table: pa.Table) -> Path:
    """Write ``table`` as one parquet file at ``path``, atomically."""
    return write_atomically(Path(path), lambda tmp: pq.write_table(table, tmp))

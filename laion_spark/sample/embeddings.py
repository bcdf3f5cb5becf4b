"""CLIP-like image embeddings in LAION's parquet_npy layout, shaped so a head scores them like LAION's data.

For a head's affine map ``score = e @ w + b`` and a target score ``s``, the unit
vector ``e = a * w_hat + sqrt(1 - a^2) * u`` with ``a = (s - b) / |w|`` and
``u`` a unit vector orthogonal to ``w_hat`` scores exactly ``s``. ``u`` is a
shared "CLIP mean" direction plus one of a few topic directions (picked with
odds that drift with the score) plus isotropic noise, so that rows look like
CLIP embeddings (positively correlated) and the per-bucket mean embeddings
differ along more than the head's own direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..aesthetic.heads import Head, load_head, save_linear_head
from .distribution import draw_target_scores
from .metadata import CollectionMetadata
from .params import SampleError
from .seeding import stream

#: Width of ViT-L/14 image embeddings, which the synthetic head scores.
EMBEDDING_DIM = 768
#: The synthetic head: norm of its weight and its bias, close to LAION's sa_0_4_vit_l_14_linear.pth.
SYNTHETIC_HEAD_NORM = 28.0
SYNTHETIC_HEAD_BIAS = 3.5
#: Share of a collection's eligible rows (URL present, not a repeated URL+TEXT pair) that have an embedding.
EMBEDDED_SHARE = 0.8
#: Embedding metadata columns, aligned row by row with the ``.npy`` file.
EMBEDDING_METADATA_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("caption", pa.string()),
        ("key", pa.string()),
        ("similarity", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)
_TOPICS = 8
_TOPIC_SLOPES = np.linspace(-1.0, 1.0, _TOPICS)  # logit change per score point, per topic
_MEAN_WEIGHT, _TOPIC_WEIGHT, _NOISE_WEIGHT = 0.8, 0.6, 0.7
_CHUNK = 65_536


@dataclass(frozen=True)
class EmbeddedRows:
    """The rows of a collection that got an embedding, and what the head makes of them."""

    rows: np.ndarray
    hashes: np.ndarray
    scores: np.ndarray
    shard_files: list[tuple[Path, Path]]


def synthetic_head(seed: int, path: Path) -> Head:
    """Write a v1-style ``Linear(768, 1)`` head with a seeded random direction to ``path`` and load it back."""
    direction = stream(seed, "synthetic-head").standard_normal(EMBEDDING_DIM)
    weight = direction / np.linalg.norm(direction) * SYNTHETIC_HEAD_NORM
    return load_head(save_linear_head(path, weight, SYNTHETIC_HEAD_BIAS))


def _basis(rng: np.random.Generator, w_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A shared mean direction and topic directions, orthonormal and orthogonal to ``w_hat``."""
    raw = np.column_stack([w_hat, rng.standard_normal((w_hat.shape[0], 1 + _TOPICS))])
    q, _ = np.linalg.qr(raw)
    return q[:, 1], q[:, 2:].T


def embeddings_for_scores(rng: np.random.Generator, head: Head, targets: np.ndarray) -> np.ndarray:
    """float16 unit embeddings (one per target) that ``head`` scores at the targets, up to fp16 rounding."""
    norm = float(np.linalg.norm(head.weight))
    w_hat = head.weight / norm
    along = (np.asarray(targets, dtype=np.float64) - head.bias) / norm
    if len(along) and np.abs(along).max() >= 1.0:
        raise SampleError(
            f"--head {head.name}: (weight norm {norm:.3g}, bias {head.bias:.3g}) cannot reach scores "
            f"{targets.min():.2f}..{targets.max():.2f} with unit embeddings"
        )
    mean_dir, topics = _basis(rng, w_hat)
    w_hat32, mean32, topics32 = w_hat.astype(np.float32), mean_dir.astype(np.float32), topics.astype(np.float32)
    out = np.empty((len(along), w_hat.shape[0]), dtype=np.float16)
    for start in range(0, len(along), _CHUNK):
        a = along[start : start + _CHUNK]
        s = targets[start : start + _CHUNK]
        logits = _TOPIC_SLOPES[None, :] * (s[:, None] - 5.0) + rng.gumbel(size=(len(a), _TOPICS))
        noise = rng.standard_normal((len(a), w_hat.shape[0]), dtype=np.float32)
        noise -= (noise @ w_hat32)[:, None] * w_hat32[None, :]
        u = (
            _MEAN_WEIGHT * mean32[None, :]
            + _TOPIC_WEIGHT * topics32[np.argmax(logits, axis=1)]
            + (_NOISE_WEIGHT / np.sqrt(w_hat.shape[0], dtype=np.float32)) * noise
        )
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        e = a[:, None].astype(np.float32) * w_hat32[None, :] + np.sqrt(1.0 - a * a)[:, None].astype(np.float32) * u
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        out[start : start + len(a)] = e
    return out


def select_embedded_rows(seed: int, meta: CollectionMetadata) -> np.ndarray:
    """Row numbers (in metadata order) that get an embedding: ~80% of rows with a URL, no repeated pairs."""
    eligible = meta.table.column("URL").is_valid().to_numpy(zero_copy_only=False) & ~meta.duplicate_rows
    chosen = stream(seed, meta.collection, "embedded-rows").random(meta.table.num_rows) < EMBEDDED_SHARE
    return np.flatnonzero(eligible & chosen)


def write_embeddings(seed: int, meta: CollectionMetadata, head: Head, folder: Path, shards: int) -> EmbeddedRows:
    """Write ``img_emb/img_emb_XXXX.npy`` + ``metadata/metadata_XXXX.parquet`` shards for the collection."""
    rows = select_embedded_rows(seed, meta)
    if shards < 1 or shards > len(rows):
        raise SampleError(f"--shards {shards}: cannot split {meta.collection}'s {len(rows)} embedded rows into so many")
    targets = draw_target_scores(stream(seed, meta.collection, "target-scores"), len(rows))
    table = meta.table.take(pa.array(rows))
    keys = pc.utf8_lpad(pc.cast(pa.array(np.arange(len(rows))), pa.string()), 9, "0")
    emb_meta = pa.Table.from_arrays(
        [
            table.column("URL"),
            table.column("TEXT"),
            keys,
            table.column("similarity"),
            pa.array(meta.true_width[rows], pa.int32()),
            pa.array(meta.true_height[rows], pa.int32()),
        ],
        schema=EMBEDDING_METADATA_SCHEMA,
    )
    (folder / "img_emb").mkdir(parents=True, exist_ok=True)
    (folder / "metadata").mkdir(parents=True, exist_ok=True)
    scores, files = [], []
    bounds = np.linspace(0, len(rows), shards + 1).astype(np.int64)
    for shard in range(shards):
        lo, hi = int(bounds[shard]), int(bounds[shard + 1])
        rng = stream(seed, meta.collection, "embeddings", str(shard))
        emb = embeddings_for_scores(rng, head, targets[lo:hi])
        npy = folder / "img_emb" / f"img_emb_{shard:04d}.npy"
        parquet = folder / "metadata" / f"metadata_{shard:04d}.parquet"
        np.save(npy, emb)
        pq.write_table(emb_meta.slice(lo, hi - lo), parquet, compression="snappy")
        scores.append(head.score(emb))
        files.append((npy, parquet))
    return EmbeddedRows(rows=rows, hashes=meta.hashes[rows], scores=np.concatenate(scores), shard_files=files)

"""Test data of the UMAP stage: subset tables, and caption embeddings with a known low-dimensional structure.

:func:`manifold_embedder` stands in for CLIP where a test is about the layout
rather than the model: each caption maps (through a seeded hash of its text) to
a point on one of a few 2-D sheets in a 48-d space, so neighbourhoods are real
and a good 2-D layout can keep them (trustworthiness near 1).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from laion_spark.lake.hashing import laion_hash
from laion_spark.lake.layout import COLLECTIONS
from laion_spark.umap import FunctionEmbedder

WIDTH = 48
SHEETS = 5
_space = np.random.default_rng(1234)
_CENTRES = _space.normal(0.0, 4.0, (SHEETS, WIDTH))
_BASES = _space.normal(0.0, 1.0, (SHEETS, WIDTH, 2))


def caption_embeddings(captions: Sequence[str | None]) -> np.ndarray:
    """float32 ``(n, WIDTH)``: the point of each caption (``None`` counts as the empty caption)."""
    out = np.empty((len(captions), WIDTH), np.float32)
    for i, caption in enumerate(captions):
        seed = zlib.crc32((caption or "").encode("utf-8"))
        rng = np.random.default_rng(seed)
        sheet = seed % SHEETS
        out[i] = _CENTRES[sheet] + _BASES[sheet] @ rng.uniform(-2, 2, 2) + rng.normal(0, 0.02, WIDTH)
    return out


def manifold_embedder() -> FunctionEmbedder:
    """A text embedder computing :func:`caption_embeddings` in the Spark tasks."""
    return FunctionEmbedder(caption_embeddings, WIDTH, "manifold-test-embedder")


def make_subset(rows: int, seed: int = 0, duplicates: int = 3, null_captions: int = 2) -> pa.Table:
    """A ``subset_<name>`` table: LAION's columns and ``collection``, with duplicate rows and null captions."""
    rng = np.random.default_rng(seed)
    url = [f"https://img{i % 5}.example.com/{seed}/{i}.jpg" for i in range(rows)]
    text: list[str | None] = [f"caption {seed}-{i} ☕" for i in range(rows)]
    for i in range(null_captions):
        text[7 + i * 11] = None
    for i in range(duplicates):  # row 2i+1 repeats row 2i: same URL, TEXT and every other value
        url[2 * i + 1], text[2 * i + 1] = url[2 * i], text[2 * i]
    score = rng.uniform(6, 10, rows).astype(np.float32)
    width = rng.integers(64, 2048, rows).astype(np.int32)
    for i in range(duplicates):
        score[2 * i + 1], width[2 * i + 1] = score[2 * i], width[2 * i]
    return pa.table(
        {
            "URL": url,
            "TEXT": text,
            "WIDTH": width,
            "HEIGHT": width,
            "similarity": np.full(rows, 0.3),
            "punsafe": pa.array(np.full(rows, 0.01, np.float32)),
            "pwatermark": pa.array(np.full(rows, 0.02, np.float32)),
            "AESTHETIC_SCORE": score,
            "hash": laion_hash(pa.array(url, pa.string()), pa.array(text, pa.string())),
            "collection": [COLLECTIONS[i % 3] for i in range(rows)],
        }
    )

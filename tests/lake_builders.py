"""Builders of small lake tables for tests: a ``joined`` table with every quirk the subsets must handle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from laion_spark.lake.collections import JOINED_SCHEMA
from laion_spark.lake.hashing import laion_hash
from laion_spark.lake.layout import COLLECTIONS
from laion_spark.lake.tables import write_table

CAPTIONS = [
    "a red barn",
    "Café au lait ☕",
    "日本語のキャプション",
    "русский текст",
    "sunset 🌅 over sea",
    "<b>bold</b>",
]


def make_joined(rows: int = 900, seed: int = 0) -> pa.Table:
    """A ``joined`` table with null and NaN tags and scores, and values exactly on each threshold."""
    rng = np.random.default_rng(seed)
    url = [None if i % 97 == 5 else f"https://img{i % 7}.example.com/p/{i}.jpg" for i in range(rows)]
    text = [None if i % 89 == 3 else f"{CAPTIONS[i % len(CAPTIONS)]} #{i}" for i in range(rows)]
    pwatermark = rng.uniform(0, 1, rows).astype(np.float32)
    punsafe = rng.uniform(0, 0.7, rows).astype(np.float32)
    aesthetic = rng.uniform(3, 10, rows).astype(np.float32)
    pwatermark[:4], punsafe[:4] = 0.1, 0.1
    aesthetic[:4] = [8.0, 7.0, 6.0, 6.5]  # exactly on the thresholds: never in the subset of that threshold
    pwatermark[4], punsafe[4], aesthetic[4] = 0.8, 0.1, 9.5  # watermark exactly at the limit: fails
    pwatermark[5], punsafe[5], aesthetic[5] = 0.1, 0.5, 9.5  # punsafe exactly at the limit: fails
    pwatermark[6], punsafe[6], aesthetic[6] = np.nan, 0.1, 9.5  # NaN tag: fails
    pwatermark[7], punsafe[7], aesthetic[7] = 0.1, 0.1, np.nan  # NaN score: in no subset
    null_w = (np.arange(rows) % 11 == 8) | (np.arange(rows) == 8)
    null_u = np.arange(rows) % 13 == 9
    null_a = np.arange(rows) % 17 == 10
    pwatermark[8], punsafe[8], aesthetic[8] = 0.1, 0.1, 9.5  # null watermark (below), else passing everything
    table = pa.table(
        {
            "URL": url,
            "TEXT": text,
            "WIDTH": rng.integers(64, 2048, rows).astype(np.int32),
            "HEIGHT": rng.integers(64, 2048, rows).astype(np.int32),
            "similarity": rng.uniform(0.28, 0.45, rows),
            "LANGUAGE": [["en", "fr", "de", None][i % 4] for i in range(rows)],
            "hash": laion_hash(pa.array(url, pa.string()), pa.array(text, pa.string())),
            "pwatermark": pa.array(pwatermark, mask=null_w),
            "punsafe": pa.array(punsafe, mask=null_u),
            "aesthetic": pa.array(aesthetic, mask=null_a),
            "collection": [COLLECTIONS[i % 3] for i in range(rows)],
        },
        schema=JOINED_SCHEMA,
    )
    return table


def write_joined(lake, lake_dir: Path, table: pa.Table) -> None:
    write_table(lake, lake.spark.createDataFrame(table), lake_dir / "joined", partition_by=["collection"])

"""Tag tables (aesthetic, watermark, safety) keyed by LAION hash, with LAION's quirks planted.

Each table gets exact duplicate rows, duplicate hashes with conflicting
values, orphan hashes that match no metadata row, and (watermark, safety)
~5% of the metadata hashes left out, as in LAION's published tag files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..lake.collections import TAG_VALUE_COLUMNS
from ..lake.hashing import laion_hash
from .seeding import stream

#: Schema of each tag table, by tag name.
TAG_SCHEMAS: dict[str, pa.Schema] = {
    tag: pa.schema([("hash", pa.int64()), (column, pa.float32())]) for tag, column in TAG_VALUE_COLUMNS.items()
}
#: Share of the distinct metadata hashes that the watermark and safety tables lack.
MISSING_SHARE = 0.05
#: Share of rows at or above the subset thresholds (pwatermark >= 0.8, prediction >= 0.5).
WATERMARKED_SHARE = 0.10
UNSAFE_SHARE = 0.05


def watermark_values(rng: np.random.Generator, rows: int) -> np.ndarray:
    """pwatermark: mostly low, ~10% at or above 0.8."""
    high = rng.random(rows) < WATERMARKED_SHARE
    return np.where(high, 0.8 + 0.2 * rng.random(rows), 0.8 * rng.beta(1.2, 8.0, rows)).astype(np.float32)


def safety_values(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Safety prediction (punsafe): mostly low, ~5% at or above 0.5."""
    high = rng.random(rows) < UNSAFE_SHARE
    return np.where(high, 0.5 + 0.5 * rng.random(rows), 0.5 * rng.beta(1.0, 10.0, rows)).astype(np.float32)


def _conflicting(rng: np.random.Generator, tag: str, values: np.ndarray) -> np.ndarray:
    """Values that differ from ``values`` (same range as the tag)."""
    shift = 0.1 + 0.8 * rng.random(len(values))
    if tag == "aesthetic":
        return (values + np.where(rng.random(len(values)) < 0.5, -1.0, 1.0) * shift).astype(np.float32)
    return np.mod(values + shift, 1.0).astype(np.float32)


def _orphans(rng: np.random.Generator, collection: str, count: int, known: np.ndarray) -> np.ndarray:
    """LAION hashes of URL+TEXT pairs that are in no metadata row of the collection."""
    ids = pa.array([f"https://orphan.invalid/{collection}/{n}.jpg" for n in rng.integers(0, 2**62, count)])
    hashes = np.unique(laion_hash(ids, pa.nulls(count, pa.string())))
    return hashes[~np.isin(hashes, known)]


def plant_tags(
    seed: int, collection: str, tag: str, hashes: np.ndarray, values: np.ndarray, metadata_hashes: np.ndarray
) -> tuple[pa.Table, dict[str, int]]:
    """Tag table for distinct ``hashes`` with duplicates and orphans added, rows shuffled; plus the counts."""
    if len(np.unique(hashes)) != len(hashes):
        raise ValueError(f"{collection} {tag}: the base hashes of a tag table must be distinct")
    rng = stream(seed, collection, "tags", tag)
    n = len(hashes)
    exact, conflicting = max(1, n // 200), max(1, n // 200)
    picked = rng.choice(n, size=exact + conflicting, replace=False)
    same, other = picked[:exact], picked[exact:]
    orphans = _orphans(rng, collection, max(1, n // 100), metadata_hashes)
    all_hashes = np.concatenate([hashes, hashes[same], hashes[other], orphans])
    all_values = np.concatenate(
        [
            values,
            values[same],
            _conflicting(rng, tag, values[other]),
            (rng.uniform(0.0, 10.0, len(orphans)) if tag == "aesthetic" else rng.random(len(orphans))),
        ]
    ).astype(np.float32)
    order = rng.permutation(len(all_hashes))
    table = pa.Table.from_arrays(
        [pa.array(all_hashes[order], pa.int64()), pa.array(all_values[order], pa.float32())], schema=TAG_SCHEMAS[tag]
    )
    counts = {
        "rows": table.num_rows,
        "duplicate_exact": exact,
        "duplicate_conflicting": conflicting,
        "orphans": len(orphans),
        "missing": int((~np.isin(np.unique(metadata_hashes), hashes)).sum()),
    }
    return table, counts


def build_tags(
    seed: int, collection: str, metadata_hashes: np.ndarray, embedded_hashes: np.ndarray, scores: np.ndarray
) -> dict[str, tuple[pa.Table, dict[str, int]]]:
    """The three tag tables of a collection: aesthetic = the head's scores of the embedded rows."""
    distinct = np.unique(metadata_hashes)
    rng = stream(seed, collection, "tag-values")
    kept = np.sort(rng.choice(len(distinct), size=len(distinct) - round(MISSING_SHARE * len(distinct)), replace=False))
    tagged = distinct[kept]
    values = {
        "aesthetic": (embedded_hashes, scores),
        "watermark": (tagged, watermark_values(rng, len(tagged))),
        "safety": (tagged, safety_values(rng, len(tagged))),
    }
    return {tag: plant_tags(seed, collection, tag, h, v, metadata_hashes) for tag, (h, v) in values.items()}


def write_tags(tables: dict[str, tuple[pa.Table, dict[str, int]]], folder: Path) -> dict[str, Path]:
    """Write each table to ``<folder>/<tag>/part-00000.parquet``."""
    paths = {}
    for tag, (table, _) in tables.items():
        path = folder / tag / "part-00000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="snappy")
        paths[tag] = path
    return paths

"""Raw LAION metadata for one collection: realistic rows, planted quirks, LAION's file layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..lake.collections import raw_schema
from ..lake.hashing import laion_hash
from . import vocabulary as vocab
from .seeding import seeded_uuid, stream

#: Raw files written per collection (LAION publishes 128).
METADATA_FILES = 2
#: True image sides: the long side is one of these, the short one follows from an aspect ratio.
_LONG_SIDES = np.array([256, 320, 400, 500, 600, 640, 800, 1000, 1024, 1200, 1280, 1500, 1600, 1920, 2048, 3000, 4000])
_ASPECTS = np.array([1.0, 5 / 4, 4 / 3, 3 / 2, 16 / 9, 2.0])
#: Share of non-square images that are landscape (true WIDTH > true HEIGHT).
LANDSCAPE_SHARE = 0.7
_NULL = pa.scalar(None, pa.string())


@dataclass(frozen=True)
class CollectionMetadata:
    """One collection's raw rows and what was planted in them.

    ``table`` is exactly what the raw files hold (WIDTH and HEIGHT swapped);
    ``true_width``/``true_height`` are the image sizes before the swap.
    """

    collection: str
    table: pa.Table
    true_width: np.ndarray
    true_height: np.ndarray
    hashes: np.ndarray
    duplicate_rows: np.ndarray
    quirks: dict[str, int]


def _phrases(rng: np.random.Generator, rows: int, words: tuple[str, ...], sep: str, lo: int, hi: int) -> pa.Array:
    """``rows`` strings of ``lo``..``hi`` words drawn from ``words``, joined by ``sep``."""
    table = pa.array(words, pa.string())
    picks = rng.integers(0, len(words), size=(hi, rows))
    lengths = rng.integers(lo, hi + 1, size=rows)
    columns = [pc.if_else(pa.array(j >= lengths), _NULL, table.take(pa.array(picks[j]))) for j in range(hi)]
    return pc.binary_join_element_wise(*columns, sep, null_handling="skip")


def _decorate(rng: np.random.Generator, captions: pa.Array) -> pa.Array:
    """Append a non-ASCII word or emoji to ~8% of the captions."""
    rows = len(captions)
    extra = pa.array(vocab.DECORATIONS).take(pa.array(rng.integers(0, len(vocab.DECORATIONS), rows)))
    extra = pc.if_else(pa.array(rng.random(rows) < vocab.DECORATED_SHARE), extra, _NULL)
    return pc.binary_join_element_wise(captions, extra, " ", null_handling="skip")


def _captions(rng: np.random.Generator, collection: str, rows: int) -> tuple[pa.Array, pa.Array | None]:
    """Captions (and LANGUAGE codes for laion2B-multi) in the collection's style."""
    if collection == "laion2B-en":
        return _decorate(rng, _phrases(rng, rows, vocab.ENGLISH, " ", 2, 9)), None
    if collection == "laion2B-multi":
        codes = list(vocab.MULTI)
        shares = np.array([vocab.MULTI[c][0] for c in codes])
        language = rng.choice(len(codes), size=rows, p=shares / shares.sum())
        captions = pa.nulls(rows, pa.string())
        for i, code in enumerate(codes):
            _, sep, words = vocab.MULTI[code]
            captions = pc.if_else(pa.array(language == i), _phrases(rng, rows, words, sep, 2, 8), captions)
        return _decorate(rng, captions), pa.array(codes, pa.string()).take(pa.array(language))
    prefixes = pa.array(vocab.NOLANG_PREFIXES).take(pa.array(rng.integers(0, len(vocab.NOLANG_PREFIXES), rows)))
    numbers = pc.cast(pa.array(rng.integers(1, 100_000, rows)), pa.string())
    suffixes = pa.array(vocab.NOLANG_SUFFIXES).take(pa.array(rng.integers(0, len(vocab.NOLANG_SUFFIXES), rows)))
    suffixes = pc.if_else(pa.array(rng.random(rows) < 0.5), _NULL, suffixes)
    codes = pc.binary_join_element_wise(prefixes, numbers, "")
    return pc.binary_join_element_wise(codes, suffixes, " ", null_handling="skip"), None


def _urls(rng: np.random.Generator, collection_index: int, rows: int) -> pa.Array:
    """Unique image URLs shaped like LAION's (CDN prefix, numeric id, slug, extension)."""
    template = rng.integers(0, len(vocab.URL_TEMPLATES), rows)
    parts = [pa.array([t[k] for t in vocab.URL_TEMPLATES]).take(pa.array(template)) for k in range(3)]
    ids = (collection_index + 1) * 10**11 + np.cumsum(rng.integers(1, 10, rows))
    slugs = _phrases(rng, rows, vocab.URL_SLUG_WORDS, "-", 1, 4)
    return pc.binary_join_element_wise(parts[0], pc.cast(pa.array(ids), pa.string()), parts[1], slugs, parts[2], "")


def _true_sizes(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """True (width, height) of each image: common long sides and aspect ratios, mostly landscape."""
    long = _LONG_SIDES[rng.integers(0, len(_LONG_SIDES), rows)]
    short = np.rint(long / _ASPECTS[rng.integers(0, len(_ASPECTS), rows)]).astype(np.int64)
    landscape = rng.random(rows) < LANDSCAPE_SHARE
    return np.where(landscape, long, short).astype(np.int32), np.where(landscape, short, long).astype(np.int32)


def generate_metadata(seed: int, collection: str, collection_index: int, rows: int) -> CollectionMetadata:
    """``rows`` raw metadata rows of ``collection`` with nulls and duplicate URL+TEXT pairs planted."""
    rng = stream(seed, collection, "metadata")
    sample_id = rng.integers(10**9, 10**10) + np.cumsum(rng.integers(1, 50, rows))
    url = _urls(rng, collection_index, rows)
    text, language = _captions(rng, collection, rows)
    width, height = _true_sizes(rng, rows)
    license_ = pa.array(vocab.LICENSES).take(pa.array(rng.integers(0, len(vocab.LICENSES), rows)))
    license_ = pc.if_else(pa.array(rng.random(rows) < 0.92), pa.scalar("?"), license_)
    nsfw = pa.array(["UNLIKELY", "UNSURE", "NSFW"]).take(pa.array(rng.choice(3, size=rows, p=[0.9, 0.07, 0.03])))
    similarity = 0.28 + 0.17 * rng.beta(2.0, 5.0, rows)

    planted = {
        "both_null": max(1, rows // 1000),
        "url_null": max(1, rows // 200),
        "text_null": max(1, rows // 100),
        "duplicate_pairs": max(1, rows // 100),
    }
    order = rng.permutation(rows)
    cut = np.cumsum([0, *planted.values()])
    both, url_only, text_only, duplicates = (order[cut[i] : cut[i + 1]] for i in range(4))
    sources = rng.choice(order[cut[-1] :], size=len(duplicates), replace=False)
    source_of = np.arange(rows)
    source_of[duplicates] = sources
    url, text = url.take(pa.array(source_of)), text.take(pa.array(source_of))
    url = pc.if_else(pa.array(np.isin(np.arange(rows), np.concatenate([both, url_only]))), _NULL, url)
    text = pc.if_else(pa.array(np.isin(np.arange(rows), np.concatenate([both, text_only]))), _NULL, text)

    columns = {
        "SAMPLE_ID": pa.array(sample_id, pa.int64()),
        "URL": url,
        "TEXT": text,
        "HEIGHT": pa.array(width, pa.int32()),  # LAION's raw files hold the width under HEIGHT
        "WIDTH": pa.array(height, pa.int32()),
        "LICENSE": license_,
        "LANGUAGE": language,
        "NSFW": nsfw,
        "similarity": pa.array(similarity, pa.float64()),
    }
    schema = raw_schema(collection)
    table = pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
    duplicate_rows = np.zeros(rows, dtype=bool)
    duplicate_rows[duplicates] = True
    return CollectionMetadata(
        collection=collection,
        table=table,
        true_width=width,
        true_height=height,
        hashes=laion_hash(url, text),
        duplicate_rows=duplicate_rows,
        quirks=planted,
    )


def write_metadata(meta: CollectionMetadata, folder: Path, seed: int) -> list[Path]:
    """Write the rows as ``part-000NN-<uuid>-c000.snappy.parquet`` files (uuid derived from the seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    job = seeded_uuid(seed, meta.collection, "metadata")
    paths = []
    bounds = np.linspace(0, meta.table.num_rows, METADATA_FILES + 1).astype(np.int64)
    for part in range(METADATA_FILES):
        path = folder / f"part-{part:05d}-{job}-c000.snappy.parquet"
        pq.write_table(meta.table.slice(bounds[part], bounds[part + 1] - bounds[part]), path, compression="snappy")
        paths.append(path)
    return paths

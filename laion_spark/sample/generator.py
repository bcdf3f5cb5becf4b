"""``generate_sample``: every file of a LAION-shaped sample, and its ``sample.json`` manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from .. import __version__
from ..aesthetic.heads import Head, load_head, resolve_head
from ..lake.layout import COLLECTIONS
from .distribution import bucket_counts, quota_counts
from .embeddings import EmbeddedRows, synthetic_head, write_embeddings
from .metadata import CollectionMetadata, generate_metadata, write_metadata
from .params import DEFAULT_SHARDS, MIN_ROWS, SampleError
from .tags import build_tags, write_tags
from .webdataset import SAMPLES_PER_TAR, WEBDATASET_TARS, WebdatasetSample, write_webdataset

MANIFEST = "sample.json"
SYNTHETIC_HEAD = Path("heads") / "synthetic-l14.pth"
_OUTPUTS = (MANIFEST, "metadata", "tags", "embeddings", "webdataset", "heads")


def _prepare(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready: absent or empty, or (with ``overwrite``) a previous sample whose files go."""
    if out.exists() and not out.is_dir():
        raise SampleError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise SampleError(f"--out {out}: is not empty; choose a new folder or pass --overwrite")
        if not (out / MANIFEST).is_file():
            raise SampleError(f"--out {out}: is not empty and holds no {MANIFEST}: refusing to overwrite it")
        for name in _OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _head_info(head: Head, kind: str, path: str, file: Path) -> dict[str, object]:
    """How the manifest describes the head that shaped the scores."""
    return {
        "kind": kind,
        "path": path,
        "name": head.name,
        "model": head.model,
        "dim": head.dim,
        "weight_norm": round(float(np.linalg.norm(head.weight)), 6),
        "bias": round(head.bias, 6),
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
    }


def _webdataset_samples(meta: CollectionMetadata, embedded: EmbeddedRows) -> list[WebdatasetSample]:
    """The first embedded rows that have a caption, as downloaded images."""
    has_text = meta.table["TEXT"].is_valid().to_numpy(zero_copy_only=False)
    rows = embedded.rows[has_text[embedded.rows]][: WEBDATASET_TARS * SAMPLES_PER_TAR]
    picked = meta.table.take(rows)
    return [
        WebdatasetSample(url=url, caption=text, width=int(meta.true_width[r]), height=int(meta.true_height[r]))
        for url, text, r in zip(picked["URL"].to_pylist(), picked["TEXT"].to_pylist(), rows, strict=True)
    ]


def _collection(
    out: Path, seed: int, index: int, collection: str, head: Head, rows: int, shards: int
) -> tuple[dict[str, object], list[WebdatasetSample]]:
    """Write one collection's metadata, embeddings and tags; its manifest entry and webdataset candidates."""
    meta = generate_metadata(seed, collection, index, rows)
    files = write_metadata(meta, out / "metadata" / collection, seed)
    embedded = write_embeddings(seed, meta, head, out / "embeddings" / collection, shards)
    tags = build_tags(seed, collection, meta.hashes, embedded.hashes, embedded.scores)
    tag_paths = write_tags(tags, out / "tags" / collection)
    probe = int(embedded.rows[0])
    non_ascii = pc.sum(pc.invert(pc.string_is_ascii(meta.table["TEXT"]))).as_py() or 0
    entry = {
        "metadata": {
            "files": [p.relative_to(out).as_posix() for p in files],
            "rows": meta.table.num_rows,
            "quirks": {**meta.quirks, "non_ascii_text": int(non_ascii)},
            "true_size_probe": {
                "SAMPLE_ID": int(meta.table["SAMPLE_ID"][probe].as_py()),
                "width": int(meta.true_width[probe]),
                "height": int(meta.true_height[probe]),
            },
        },
        "embeddings": {
            "path": f"embeddings/{collection}",
            "rows": len(embedded.rows),
            "shards": len(embedded.shard_files),
            "dim": head.dim,
            "target_buckets": quota_counts(len(embedded.rows)),
            "realised_buckets": bucket_counts(embedded.scores),
        },
        "tags": {
            tag: {"path": tag_paths[tag].relative_to(out).as_posix(), **counts} for tag, (_, counts) in tags.items()
        },
    }
    return entry, _webdataset_samples(meta, embedded)


def generate_sample(
    out: str | Path,
    rows: int,
    seed: int,
    head: str | Path | None = None,
    shards: int = DEFAULT_SHARDS,
    overwrite: bool = False,
) -> dict[str, object]:
    """Write a deterministic LAION-shaped sample under ``out`` and return its manifest.

    ``rows`` metadata rows per collection; ``head`` (a path or head name) shapes
    the aesthetic scores, else a synthetic ViT-L/14 head is written to
    ``heads/synthetic-l14.pth``; ``shards`` embedding shards per collection;
    ``overwrite`` replaces a previous sample in ``out``.
    """
    if rows < MIN_ROWS:
        raise SampleError(f"--rows must be at least {MIN_ROWS}, got {rows}")
    if shards < 1:
        raise SampleError(f"--shards must be at least 1, got {shards}")
    if seed < 0:
        raise SampleError(f"--seed must be non-negative, got {seed}")
    out = Path(out)
    if head is not None:  # load a given head before touching ``out``: a bad head leaves nothing behind
        loaded = load_head(head)
        head_info = _head_info(loaded, "laion", str(head), resolve_head(head))
    _prepare(out, overwrite)
    if head is None:
        loaded = synthetic_head(seed, out / SYNTHETIC_HEAD)
        head_info = _head_info(loaded, "synthetic", SYNTHETIC_HEAD.as_posix(), out / SYNTHETIC_HEAD)
    collections, samples = {}, {}
    for index, collection in enumerate(COLLECTIONS):
        collections[collection], samples[collection] = _collection(out, seed, index, collection, loaded, rows, shards)
    source = COLLECTIONS[0]
    webdataset = write_webdataset(seed, samples[source], out / "webdataset")
    manifest = {
        "generator": f"laion-spark {__version__}",
        "seed": seed,
        "rows": rows,
        "shards": shards,
        "head": head_info,
        "collections": collections,
        "webdataset": {
            "source": source,
            "tars": [p.relative_to(out).as_posix() for p in webdataset["tars"]],
            "samples": webdataset["samples"],
            "corrupt_keys": webdataset["corrupt_keys"],
            "bad_members": webdataset["bad_members"],
            "photos": webdataset["photos"],
            "formats": webdataset["formats"],
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest

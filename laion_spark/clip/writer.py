"""Files a task writes: embedding shards in LAION's parquet_npy layout, and its tar's rows for the lake commit.

Embedding shards (what ``score-embeddings``, embedding-reader and clip-retrieval's index tools read back):
``<root>/img_emb/img_emb_XXXX.npy`` -- float16, rows L2-normalised before the cast -- and
``<root>/metadata/metadata_XXXX.parquet`` with :data:`EMBEDDING_METADATA` columns (clip-retrieval's names)
then the additional columns of img2dataset, the same rows in the same order. Failed samples have no
embedding and are not in the shard (they are in the lake's ``image_errors``).

``XXXX`` is a number the folder hands out (:func:`claim_number`): each tar scored with one model into one
collection owns one number, recorded in ``<root>/.claims/XXXX.json`` (created exclusively, so two runs at
once never get the same number). A rerun, a retried task or ``--force`` of that tar writes its own files
again; another tar, collection, model or tar folder gets a new number, so that a second run into the same
folder never overwrites the rows of another, and numbers already used by files of another writer are
skipped.

Every file is written under a temporary name in its own folder and renamed into place, so a reader never
sees a half-written file, and a killed task leaves none behind under a final name.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Columns of an embedding shard's metadata file, as clip-retrieval names them for img2dataset's webdataset
#: (``image_path`` is the sample key; ``width``/``height`` the stored size, ``original_width``/``original_height``
#: the size as downloaded, LAION's WIDTH/HEIGHT); img2dataset's additional columns follow.
EMBEDDING_METADATA = pa.schema(
    [
        ("image_path", pa.string()),
        ("caption", pa.string()),
        ("url", pa.string()),
        ("key", pa.string()),
        ("status", pa.string()),
        ("error_message", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("original_width", pa.int32()),
        ("original_height", pa.int32()),
        ("exif", pa.string()),
        ("sha256", pa.string()),
    ]
)
#: The folder of an embeddings root that records which tar owns which number.
CLAIMS = ".claims"
_NUMBERED = re.compile(r"^(?:img_emb_|metadata_)?(\d+)\.(?:npy|parquet|json)$")


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


def _used_numbers(root: Path) -> set[int]:
    """Numbers of the claims and of the embedding files under ``root``, whoever wrote them."""
    numbers = set()
    for folder in (root / CLAIMS, root / "img_emb", root / "metadata"):
        if folder.is_dir():
            numbers |= {int(m[1]) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))}
    return numbers


def claims(root: str | Path) -> dict[int, dict[str, str]]:
    """Every claim under ``root``: number -> its owner (unreadable claim files are skipped: their numbers stay
    used)."""
    folder = Path(root) / CLAIMS
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found[int(path.stem)] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return found


def claim_number(root: str | Path, owner: Mapping[str, str], known: dict[int, dict[str, str]] | None = None) -> int:
    """The number of ``owner``'s embedding files under ``root``: the one it claimed before, else the lowest number
    no claim and no file uses, claimed now (an exclusive create: a number is never handed out twice).

    ``owner`` says whose files they are (tar, model, collection); ``known`` is :func:`claims` of ``root``, read
    once for many calls (updated with the new claim). Raises ``OSError`` when the claim cannot be written.
    """
    root = Path(root)
    known = claims(root) if known is None else known
    owner = dict(owner)
    for number, claimant in sorted(known.items()):
        if claimant == owner:
            return number
    (root / CLAIMS).mkdir(parents=True, exist_ok=True)
    used = _used_numbers(root) | set(known)
    number = 0
    while True:
        while number in used:
            number += 1
        try:
            with open(root / CLAIMS / f"{number:04d}.json", "x", encoding="utf-8") as handle:
                json.dump(owner, handle, sort_keys=True)
        except FileExistsError:
            used.add(number)
            continue
        known[number] = owner
        return number


def write_embedding_shard(
    root: str | Path, index: int, embeddings: np.ndarray, metadata: pa.Table
) -> tuple[Path, Path]:
    """Write shard ``index``: ``embeddings`` (n x d) re-normalised and cast to float16, and ``metadata``.

    ``metadata`` must start with :data:`EMBEDDING_METADATA`'s columns (more may follow) and have ``n`` rows
    (``ValueError`` otherwise). The metadata is renamed into place after the ``.npy``; both names are final
    only once complete. Returns the two paths.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] != metadata.num_rows:
        raise ValueError(f"shard {index}: {embeddings.shape} embeddings for {metadata.num_rows} metadata rows")
    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(norms > 0, emb / norms, emb).astype(np.float16)
    npy, parquet = shard_files(root, index)
    if metadata.column_names[: len(EMBEDDING_METADATA)] != EMBEDDING_METADATA.names:
        raise ValueError(
            f"shard {index}: metadata columns {metadata.column_names}, expected {EMBEDDING_METADATA.names}"
        )
    table = metadata

    def save_npy(path: Path) -> None:
        with path.open("wb") as handle:
            np.save(handle, unit)

    write_atomically(npy, save_npy)
    write_atomically(parquet, lambda path: pq.write_table(table, path))
    return npy, parquet


def write_rows(path: str | Path, table: pa.Table) -> Path:
    """Write ``table`` as one parquet file at ``path``, atomically."""
    return write_atomically(Path(path), lambda tmp: pq.write_table(table, tmp))

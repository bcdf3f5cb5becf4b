"""Embedding shards in LAION's parquet_npy layout.

``<root>/img_emb/img_emb_XXXX.npy`` (N x d float16, rows L2-normalised) and
``<root>/metadata/metadata_XXXX.parquet`` (same N rows, same order). Pairs are
made by sorted file order and their numbers must agree: a misaligned pair is
an error, never scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..errors import InputError, first_line

_NPY = re.compile(r"^img_emb_(\d+)\.npy$")
_META = re.compile(r"^metadata_(\d+)\.parquet$")


class ShardLayoutError(InputError):
    """The folder is not a well-formed parquet_npy embedding layout."""


@dataclass(frozen=True)
class Shard:
    """One aligned pair of embedding and metadata files."""

    index: int
    npy: str
    metadata: str

    def embeddings(self) -> np.ndarray:
        """The embedding matrix, memory-mapped (read-only)."""
        return np.load(self.npy, mmap_mode="r")

    def shape(self) -> tuple[int, int]:
        """(rows, width) from the ``.npy`` header, without reading the data.

        Raises :class:`ShardLayoutError` for a file that is not a ``.npy``, holds
        no 2-D float array, or is shorter than its header says (truncated).
        """
        try:
            with open(self.npy, "rb") as handle:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
                data_start = handle.tell()
        except Exception as err:  # noqa: BLE001 - numpy's header parser raises ValueError, SyntaxError, TokenError ...
            raise ShardLayoutError(f"{self.npy}: not a readable .npy file ({first_line(err)})") from None
        if len(shape) != 2 or fortran or dtype.kind != "f":
            raise ShardLayoutError(f"{self.npy}: expected a 2-D C-order float array, got {dtype} of shape {shape}")
        size = Path(self.npy).stat().st_size
        expected = data_start + int(np.prod(shape)) * dtype.itemsize
        if size < expected:
            raise ShardLayoutError(f"{self.npy}: truncated: {size:,} bytes, the header promises {expected:,}")
        return int(shape[0]), int(shape[1])

    def metadata_rows(self) -> int:
        """Row count of the metadata parquet, from its footer."""
        return pq.ParquetFile(self.metadata).metadata.num_rows


def discover_shards(root: str | Path) -> list[Shard]:
    """The shards under ``root``, paired by sorted file order, numbers checked."""
    root = Path(root)
    emb_dir, meta_dir = root / "img_emb", root / "metadata"
    for folder in (emb_dir, meta_dir):
        if not folder.is_dir():
            raise ShardLayoutError(f"{root}: missing folder {folder.name}/ (expected img_emb/ and metadata/)")
    npys = sorted(p for p in emb_dir.iterdir() if _NPY.match(p.name))
    metas = sorted(p for p in meta_dir.iterdir() if _META.match(p.name))
    if not npys:
        raise ShardLayoutError(f"{emb_dir}: no img_emb_XXXX.npy files")
    if len(npys) != len(metas):
        raise ShardLayoutError(f"{root}: {len(npys)} img_emb files but {len(metas)} metadata files")
    shards = []
    for npy, meta in zip(npys, metas, strict=True):
        n_emb, n_meta = int(_NPY.match(npy.name)[1]), int(_META.match(meta.name)[1])
        if n_emb != n_meta:
            raise ShardLayoutError(f"{root}: {npy.name} is paired with {meta.name} by sorted order; numbers differ")
        shards.append(Shard(index=n_emb, npy=str(npy.resolve()), metadata=str(meta.resolve())))
    return shards

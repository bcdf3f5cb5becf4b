"""The LAION hash, vectorised over Arrow batches.

LAION keys every tag table by
``mmh3.hash64(((URL or "") + (TEXT or "")).encode("utf-8"))[0]``: the first
signed 64-bit half of MurmurHash3 x64_128 with seed 0. This module computes it
for a whole Arrow batch at once: one compiled (numba) pass over the batch's
string buffer, so a Spark task hashes millions of rows without a Python loop
per row and without copying strings into Python objects.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def laion_hash(url: pa.Array | pa.ChunkedArray, text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """LAION's hash of each (URL, TEXT) pair; a null field counts as ``""``."""
    from .murmur3 import murmur3_x64_128_h1  # numba loads with the first hash, not with the lake

    joined = pc.binary_join_element_wise(
        pc.fill_null(pc.cast(url, pa.large_string()), ""),
        pc.fill_null(pc.cast(text, pa.large_string()), ""),
        pa.scalar("", pa.large_string()),
    )
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    if len(joined) == 0:
        return np.zeros(0, dtype=np.int64)
    _, offset_buf, data_buf = joined.buffers()
    offsets = np.frombuffer(offset_buf, dtype=np.int64)[joined.offset : joined.offset + len(joined) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return murmur3_x64_128_h1(data, offsets)

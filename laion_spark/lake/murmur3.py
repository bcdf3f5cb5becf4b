"""MurmurHash3 x64_128 (seed 0), the first 64-bit half, over byte strings stored back to back: the compiled
kernel of :func:`laion_spark.lake.hashing.laion_hash`, in a module of its own so that numba is imported by the
commands that hash, not by every command that imports the lake.
"""

from __future__ import annotations

import numba
import numpy as np

_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)


@numba.njit(inline="always")
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(inline="always")
def _fmix(k: np.uint64) -> np.uint64:
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    k ^= k >> np.uint64(33)
    return k


@numba.njit(inline="always")
def _word(data: np.ndarray, at: int, count: int) -> np.uint64:
    """Little-endian integer of ``count`` (<= 8) bytes starting at ``data[at]``."""
    w = np.uint64(0)
    for i in range(count):
        w |= np.uint64(data[at + i]) << np.uint64(8 * i)
    return w


@numba.njit(cache=True, nogil=True)
def murmur3_x64_128_h1(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """First half of MurmurHash3 x64_128 (seed 0) of each byte string, as int64.

    ``data`` holds the strings back to back (uint8) and ``offsets`` their
    boundaries (``len(strings) + 1`` int64 values), as in an Arrow binary array.
    """
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for row in range(n):
        start = offsets[row]
        length = offsets[row + 1] - start
        h1 = np.uint64(0)
        h2 = np.uint64(0)
        nblocks = length // 16
        for block in range(nblocks):
            at = start + 16 * block
            k1 = _word(data, at, 8) * _C1
            k2 = _word(data, at + 8, 8) * _C2
            h1 ^= _rotl(k1, 31) * _C2
            h1 = (_rotl(h1, 27) + h2) * np.uint64(5) + np.uint64(0x52DCE729)
            h2 ^= _rotl(k2, 33) * _C1
            h2 = (_rotl(h2, 31) + h1) * np.uint64(5) + np.uint64(0x38495AB5)
        tail_at = start + 16 * nblocks
        tail = length - 16 * nblocks
        if tail > 8:
            h2 ^= _rotl(_word(data, tail_at + 8, tail - 8) * _C2, 33) * _C1
        if tail > 0:
            h1 ^= _rotl(_word(data, tail_at, min(tail, 8)) * _C1, 31) * _C2
        h1 ^= np.uint64(length)
        h2 ^= np.uint64(length)
        h1 += h2
        h2 += h1
        out[row] = _fmix(h1) + _fmix(h2)
    return out.view(np.int64)

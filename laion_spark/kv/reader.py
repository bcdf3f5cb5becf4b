"""Read LAION's on-disk hash -> values KV (the ``static_ondisk_kv`` file format).

A KV file is a flat run of fixed-width records sorted by signed key, with no
header: ``struct.pack("q", key) + struct.pack(value_format, *values)``, native
(little-endian) order. The aesthetic KV is ``q`` + ``e`` (10-byte records), the
watermark/safety KV ``q`` + ``ee`` (12 bytes). Missing values are stored as
NaN. The file does not say its value format, so readers must be told it
(``e`` by default); a file whose size is not a multiple of the record size is
refused.

:class:`KV` memory-maps the file as a numpy structured array: ``kv[key]`` is a
binary search (``KeyError`` when absent; ``static_ondisk_kv`` raises
``ValueError``) and :meth:`KV.get_batch` looks up a whole array of keys at once
with one compiled (numba) pass that never copies the key column.
"""

from __future__ import annotations

import bisect
import os
import struct
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa

from ..errors import InputError
from ..lake.hashing import laion_hash
from .order import key_order

KEY_FORMAT = "q"
#: struct value codes a KV may hold, and their numpy (little-endian) types.
VALUE_CODES = {"e": "<f2", "f": "<f4", "d": "<f8"}
#: At open, the key order is checked on at most this many evenly spaced records
#: (all of them for smaller files); :meth:`KV.verify` checks every record.
OPEN_CHECK_RECORDS = 65_536
_VERIFY_CHUNK = 4_000_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class KVFormatError(InputError):
    """A KV file, or the value format it is read with, is not valid."""


class KVNotFoundError(KVFormatError, FileNotFoundError):
    """No KV file at the path."""


def record_dtype(value_format: str) -> np.dtype:
    """Numpy dtype of one record: field ``key`` (int64) then ``v0``, ``v1`` ... at struct's offsets.

    The key and the values are packed by separate ``struct.pack`` calls, so the
    values start right after the key (byte 8) and are laid out as
    ``struct.pack(value_format, ...)`` lays them out, alignment padding included.
    """
    if not value_format or any(code not in VALUE_CODES for code in value_format):
        raise KVFormatError(
            f"value format {value_format!r} is not valid: use one of {', '.join(VALUE_CODES)} per value column "
            "(e.g. 'e' for aesthetic, 'ee' for pwatermark, punsafe)"
        )
    key_size = struct.calcsize(KEY_FORMAT)
    offsets = [
        key_size + struct.calcsize(value_format[: i + 1]) - struct.calcsize(code) for i, code in enumerate(value_format)
    ]
    return np.dtype(
        {
            "names": ["key"] + [f"v{i}" for i in range(len(value_format))],
            "formats": ["<i8"] + [VALUE_CODES[code] for code in value_format],
            "offsets": [0, *offsets],
            "itemsize": key_size + struct.calcsize(value_format),
        }
    )


def laion_key(url: str | None, text: str | None) -> int:
    """LAION's hash of one (URL, TEXT) pair, the key of every LAION KV."""
    return int(laion_hash(pa.array([url], pa.string()), pa.array([text], pa.string()))[0])


class KV:
    """A read-only, memory-mapped KV file in the ``static_ondisk_kv`` format.

    ``KV(path, value_format="e")``; ``kv[key] -> tuple`` of floats (``KeyError``
    when absent), ``kv.get_batch(keys) -> (values, found)``, ``len(kv)``,
    ``key in kv``, ``kv.verify()``. The file size and the key order (on a
    sample of at most :data:`OPEN_CHECK_RECORDS` records) are checked at open.
    """

    def __init__(self, path: str | Path, value_format: str = "e") -> None:
        self.path = Path(path)
        self.value_format = value_format
        self.dtype = record_dtype(value_format)
        self.record_size = self.dtype.itemsize
        if not self.path.is_file():
            raise KVNotFoundError(f"no KV file at {self.path}")
        size = os.path.getsize(self.path)
        if size % self.record_size:
            raise KVFormatError(
                f"{self.path}: size {size:,} bytes is not a multiple of the {self.record_size}-byte record "
                f"(key {KEY_FORMAT!r} + values {value_format!r}): the file is truncated or the value format is wrong"
            )
        # A plain ndarray view of the map: element access without np.memmap's Python-level __getitem__.
        self._records = (
            np.memmap(self.path, dtype=self.dtype, mode="r").view(np.ndarray) if size else np.zeros(0, self.dtype)
        )
        self._keys = self._records["key"]
        self._value_names = self.dtype.names[1:]
        self._check_order(step=max(1, -(-len(self) // OPEN_CHECK_RECORDS)))

    def __len__(self) -> int:
        return int(self._records.shape[0])

    def __repr__(self) -> str:
        return f"KV({str(self.path)!r}, value_format={self.value_format!r}, records={len(self):,})"

    def __enter__(self) -> KV:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop this reader's views of the memory map (the map closes with its last view)."""
        self._records = np.zeros(0, dtype=self.dtype)
        self._keys = self._records["key"]

    @property
    def keys(self) -> np.ndarray:
        """The sorted key column (a read-only view of the file)."""
        return self._keys

    def _index(self, key: int) -> int | None:
        if not _INT64_MIN <= key <= _INT64_MAX:
            return None
        i = bisect.bisect_left(self._keys, key)
        return i if i < len(self) and int(self._keys[i]) == key else None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int | np.integer) and self._index(int(key)) is not None

    def __getitem__(self, key: int) -> tuple[float, ...]:
        i = self._index(int(key))
        if i is None:
            raise KeyError(key)
        record = self._records[i]
        return tuple(float(record[name]) for name in self._value_names)

    def get(self, key: int, default: tuple[float, ...] | None = None) -> tuple[float, ...] | None:
        """``kv[key]``, or ``default`` when the key is absent."""
        try:
            return self[key]
        except KeyError:
            return default

    def get_text(self, url: str | None, text: str | None) -> tuple[float, ...]:
        """Values of the (URL, TEXT) pair, looked up by its LAION hash (``KeyError`` when absent)."""
        return self[laion_key(url, text)]

    def get_batch(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Look up many keys at once.

        Returns ``values`` of shape ``(len(keys), number of values)`` (float32, or
        float64 for a ``d`` value) with NaN where a key is absent, and ``found``,
        a boolean mask. The queries are sorted, then binary-searched in
        one compiled pass over the memory-mapped key column.
        """
        query = np.asarray(keys, dtype=np.int64).ravel()
        out_type = np.result_type(np.float32, *(self.dtype[name] for name in self._value_names))
        values = np.full((query.shape[0], len(self._value_names)), np.nan, dtype=out_type)
        found = np.zeros(query.shape[0], dtype=bool)
        if not len(self) or not query.shape[0]:
            return values, found
        order, sorted_query = key_order(query)
        if order is None:
            order = np.arange(query.shape[0])
        at = _find_sorted(self._keys, sorted_query)
        hit = at >= 0
        rows, at = order[hit], at[hit]
        found[rows] = True
        for j, name in enumerate(self._value_names):
            values[rows, j] = self._records[name][at]
        return values, found

    def get_batch_text(self, urls: pa.Array | list, texts: pa.Array | list) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`get_batch` keyed by the LAION hash of each (URL, TEXT) pair."""
        return self.get_batch(laion_hash(pa.array(urls, pa.string()), pa.array(texts, pa.string())))

    def verify(self) -> None:
        """Check every record: keys strictly increasing (sorted, no duplicates). Raises :class:`KVFormatError`."""
        self._check_order(step=1)

    def _check_order(self, step: int) -> None:
        """Check that every ``step``-th key is strictly greater than the one before, in bounded chunks."""
        n = len(self)
        chunk = _VERIFY_CHUNK * step
        for start in range(0, n, chunk):
            sampled = self._keys[start : start + chunk + step : step]  # one key of overlap with the next chunk
            bad = np.flatnonzero(sampled[1:] <= sampled[:-1])
            if bad.size:
                at = int(bad[0])
                i, a, b = start + at * step, int(sampled[at]), int(sampled[at + 1])
                what = "duplicate key" if a == b else "keys not sorted"
                raise KVFormatError(
                    f"{self.path}: {what}: record {i:,} has key {a} and record {i + step:,} has key {b}; "
                    "a KV file must hold strictly increasing keys (rebuild it with laion-spark build-kv)"
                )


@numba.njit(cache=True, nogil=True)
def _find_sorted(keys: np.ndarray, sorted_query: np.ndarray) -> np.ndarray:
    """Index in ``keys`` of each of ``sorted_query``, or -1 where absent; ``keys`` is never copied.

    ``np.searchsorted`` would first copy the whole strided key column of the
    memory map; this compiled binary search reads only the probed records, and
    each query starts where the previous (smaller) one landed.
    """
    n = keys.shape[0]
    out = np.full(sorted_query.shape[0], -1, dtype=np.int64)
    lo = 0
    for j in range(sorted_query.shape[0]):
        target = sorted_query[j]
        hi = n
        while lo < hi:
            mid = (lo + hi) >> 1
            if keys[mid] < target:
                lo = mid + 1
            else:
                hi = mid
        if lo < n and keys[lo] == target:
            out[j] = lo
    return out

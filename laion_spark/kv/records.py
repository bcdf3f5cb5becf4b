"""Write the records of a KV build task: compiled (numba) kernels.

A build task writes up to millions of records: numpy's field-by-field writes
into 10-byte records are strided copies into freshly faulted pages, and its
float16 conversion is done in software. Here the records are packed chunk by
chunk into one reused buffer, and float32 values become float16 in one F16C
instruction on x86-64 CPUs that have it (~10x numpy's conversion, with the
same rounding; other CPUs use numpy's). The kernels
release the GIL (Sail runs Python tasks in-process) and are cached on disk
after their first compile.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import BinaryIO

import numba
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..errors import InputError
from .reader import record_dtype

#: Records packed and written at a time (one reused buffer, ~0.6 MiB for ``e``).
WRITE_CHUNK_ROWS = 1 << 16
#: Whether float32 -> float16 is one F16C instruction here; without it LLVM would call a runtime helper
#: that numba's JIT does not link, so numpy converts instead.
HARDWARE_HALF = platform.machine() in ("x86_64", "AMD64") and bool(llvm.get_host_cpu_features().get("f16c"))


class ValueOverflowError(InputError):
    """A finite value does not fit the KV's float (``struct.pack`` refuses it too)."""


def write_records(
    sink: BinaryIO,
    keys: np.ndarray,
    values: Sequence[np.ndarray],
    value_format: str,
    value_columns: Sequence[str] | None = None,
    key_column: str = "hash",
) -> int:
    """Write the records of sorted, unique ``keys`` and their ``values`` to ``sink``; the bytes written.

    ``values``: one float array per value code (NaN for null). The bytes are
    what ``struct.pack`` writes record by record. A finite value too large for
    its code raises :class:`ValueOverflowError` naming the column
    (``value_columns``, default ``v0``, ``v1`` ...), the key and the count.
    """
    dtype = record_dtype(value_format)
    value_columns = list(value_columns or dtype.names[1:])
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    n = keys.shape[0]
    buffer = np.zeros(min(n, WRITE_CHUNK_ROWS), dtype=dtype)  # zeros: struct's alignment padding is zero bytes
    words = buffer.view(np.uint16).reshape(buffer.shape[0], dtype.itemsize // 2)  # every field is at an even offset
    for start in range(0, n, WRITE_CHUNK_ROWS):
        stop = min(n, start + WRITE_CHUNK_ROWS)
        _pack_keys(keys[start:stop], words)
        for name, source, column in zip(dtype.names[1:], values, value_columns, strict=True):
            target, offset = dtype.fields[name]
            if not _pack_values(source[start:stop], target, words, offset // 2):
                raise _overflow(source, keys, target, column, key_column)
        sink.write(buffer[: stop - start].data)
    return n * dtype.itemsize


def _pack_values(source: np.ndarray, target: np.dtype, words: np.ndarray, column: int) -> bool:
    """Write ``source`` as ``target`` floats into the uint16 ``column`` of ``words``; ``False`` on overflow."""
    if target == np.float16 and source.dtype == np.float32 and HARDWARE_HALF:
        return _pack_halves(source, words, column) < 0
    encoded = _encode(source, target)
    if encoded is None:
        return False
    width = target.itemsize // 2
    words[: source.shape[0], column : column + width] = encoded.view(np.uint16).reshape(-1, width)
    return True


def _encode(source: np.ndarray, target: np.dtype) -> np.ndarray | None:
    """``source`` as ``target`` floats with struct's NaN; ``None`` when a finite value does not fit.

    Other than float16, the values go through float64 as ``struct`` takes them
    (a Python float): a signalling float32 NaN comes out quiet, as there.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        encoded = source.astype(target) if target == np.float16 else source.astype(np.float64).astype(target)
    if target == np.float16:
        return encoded if _settle_halves(source, encoded.view(np.uint16)) < 0 else None
    return None if (np.isinf(encoded) & np.isfinite(source)).any() else encoded


def _overflow(
    source: np.ndarray, keys: np.ndarray, target: np.dtype, column: str, key_column: str
) -> ValueOverflowError:
    with np.errstate(over="ignore", invalid="ignore"):
        bad = np.flatnonzero(np.isinf(source.astype(target)) & np.isfinite(source))
    i = int(bad[0])
    return ValueOverflowError(
        f"column {column!r}: value {float(source[i])!r} at {key_column} {int(keys[i])} does not fit the "
        f"{np.finfo(target).bits}-bit float of the KV (largest {float(np.finfo(target).max)}); "
        f"{bad.size:,} such value(s) in this key range"
    )


@numba.njit(cache=True, nogil=True)
def _pack_keys(keys: np.ndarray, words: np.ndarray) -> None:
    """Write int64 ``keys`` into the first 8 bytes of each record; ``words`` is the records as uint16 rows."""
    halves = keys.view(np.uint16)
    for i in range(keys.shape[0]):
        words[i, 0] = halves[4 * i]
        words[i, 1] = halves[4 * i + 1]
        words[i, 2] = halves[4 * i + 2]
        words[i, 3] = halves[4 * i + 3]


@intrinsic
def _half_bits(typingctx, value):
    """float32 -> float16 bits, round to nearest even: LLVM ``fptrunc`` (one F16C instruction on x86-64)."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(value), codegen


@numba.njit(cache=True, nogil=True)
def _pack_halves(source: np.ndarray, words: np.ndarray, column: int) -> int:
    """Write float32 ``source`` as float16 into ``words[:, column]`` as ``struct.pack("e")`` writes it.

    Returns the index of the first finite value too large for float16
    (stopping there), or -1. Only where :data:`HARDWARE_HALF`.
    """
    for i in range(source.shape[0]):
        bits = _struct_half(_half_bits(source[i]), source[i])
        if bits < 0:
            return i
        words[i, column] = bits
    return -1


@numba.njit(cache=True, nogil=True)
def _settle_halves(source: np.ndarray, bits: np.ndarray) -> int:
    """Make float16 ``bits`` (converted from ``source`` by numpy) what ``struct.pack("e")`` writes.

    Returns the index of the first finite source value too large for float16
    (stopping there), or -1.
    """
    for i in range(bits.shape[0]):
        settled = _struct_half(bits[i], source[i])
        if settled < 0:
            return i
        bits[i] = settled
    return -1


@numba.njit(inline="always")
def _struct_half(bits: np.uint16, value: float) -> int:
    """float16 ``bits`` converted from ``value`` as ``struct`` writes them: every NaN the quiet NaN of its
    sign (``0x7E00``); -1 when a finite ``value`` became infinite (it does not fit)."""
    if (bits & 0x7C00) == 0x7C00:
        if bits & 0x03FF:
            return 0x7E00 | (bits & 0x8000)
        if np.isfinite(value):
            return -1
    return bits

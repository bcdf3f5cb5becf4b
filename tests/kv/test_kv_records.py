"""The KV record writer writes what struct.pack writes, record by record, on every path."""

from __future__ import annotations

import io
import struct

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laion_spark.kv import records as kv_records
from laion_spark.kv.records import ValueOverflowError, write_records

INT64 = st.integers(-(2**63), 2**63 - 1)
FLOAT32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


def struct_bytes(keys: np.ndarray, values: list[np.ndarray], value_format: str) -> bytes:
    """What static_ondisk_kv.parquet_to_file writes: struct.pack per record."""
    return b"".join(
        struct.pack("q", int(k)) + struct.pack(value_format, *(float(v[i]) for v in values)) for i, k in enumerate(keys)
    )


def written(keys: np.ndarray, values: list[np.ndarray], value_format: str) -> bytes:
    sink = io.BytesIO()
    size = write_records(sink, keys, values, value_format)
    assert size == len(sink.getvalue())
    return sink.getvalue()


def half_edges() -> np.ndarray:
    """Every float16 value, the float32 midpoints between neighbours (round-half-even ties) and the
    float32 values one ulp either side of each midpoint, as float32; nothing beyond float16's range."""
    halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = np.sort(halves[np.isfinite(halves)].astype(np.float32))
    finite = np.unique(finite)
    mids = ((finite[1:].astype(np.float64) + finite[:-1]) / 2).astype(np.float32)
    edges = [halves.astype(np.float32), mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, -np.inf)]
    values = np.concatenate(edges).astype(np.float32)
    return values[~(np.abs(values) >= 65520)]  # 65520 and up round to infinity: overflow


@pytest.mark.parametrize("value_format", ["e", "ee", "f", "ef", "d"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_records_are_struct_pack_bytes_for_every_value_format(value_format: str, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 50))
    keys = np.sort(np.array(data.draw(st.lists(INT64, min_size=n, max_size=n, unique=True)), dtype=np.int64))
    half_range = st.one_of(st.floats(-65504, 65504, width=32), st.sampled_from([np.nan, -np.nan, np.inf, -np.inf]))
    values = [
        np.array(data.draw(st.lists(FLOAT32 if code != "e" else half_range, min_size=n, max_size=n)), np.float32)
        for code in value_format
    ]
    assert written(keys, values, value_format) == struct_bytes(keys, values, value_format)


def test_float32_to_float16_matches_struct_on_every_half_tie_and_neighbour() -> None:
    values = half_edges()
    values = np.concatenate([values, np.float32([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30])])
    nan_payload = np.array([0x7FC00001, 0xFFA00000], dtype=np.uint32).view(np.float32)  # NaNs with payloads
    values = np.concatenate([values, nan_payload])
    keys = np.arange(values.shape[0], dtype=np.int64)
    assert written(keys, [values], "e") == struct_bytes(keys, [values], "e")


def test_hardware_and_numpy_half_conversions_write_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    values = half_edges()
    keys = np.arange(values.shape[0], dtype=np.int64)
    hardware = written(keys, [values], "e")
    monkeypatch.setattr(kv_records, "HARDWARE_HALF", False)
    assert written(keys, [values], "e") == hardware


def test_float64_values_are_rounded_to_half_once_as_struct_does() -> None:
    # 1 + 2**-11 + 2**-40 rounds up to the next half; through float32 it would become the tie 1 + 2**-11
    # and round (to even) down to 1.0.
    values = np.array([1 + 2**-11 + 2**-40, 1 + 2**-11, 2.0**-25 + 2.0**-60], dtype=np.float64)
    keys = np.arange(3, dtype=np.int64)
    assert written(keys, [values], "e") == struct_bytes(keys, [values], "e")


def test_records_written_in_several_chunks_equal_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    keys = np.sort(rng.choice(2**40, 1000, replace=False)).astype(np.int64)
    values = [rng.random(1000).astype(np.float32), rng.random(1000).astype(np.float32)]
    whole = written(keys, values, "ee")
    monkeypatch.setattr(kv_records, "WRITE_CHUNK_ROWS", 7)
    assert written(keys, values, "ee") == whole


@pytest.mark.parametrize("hardware", [True, False])
def test_value_too_large_for_float16_names_the_column_the_key_and_the_count(
    hardware: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kv_records, "HARDWARE_HALF", hardware and kv_records.HARDWARE_HALF)
    keys = np.arange(5, dtype=np.int64)
    values = np.float32([1.0, 65519.0, 65520.0, np.inf, 1e6])  # 65519 rounds down to 65504; inf is allowed
    with pytest.raises(ValueOverflowError, match=r"column 'aesthetic': value 65520.0 at hash 2 .* 2 such value"):
        write_records(io.BytesIO(), keys, [values], "e", ["aesthetic"])


@pytest.mark.skipif(not kv_records.HARDWARE_HALF, reason="this CPU has no F16C: numpy converts")
def test_hardware_half_equals_numpy_for_every_sign_exponent_mantissa_and_rounding_case() -> None:
    # Every float32 sign, exponent and kept 10-bit mantissa, with the 13 dropped bits at zero, one, just
    # under, at and just over half, and all ones: 3.1M values, every rounding decision of the normal range.
    kept = np.arange(1 << 19, dtype=np.uint32) << 13  # sign, exponent, 10 mantissa bits
    dropped = np.array([0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF], dtype=np.uint32)
    source = (kept[:, None] | dropped[None, :]).ravel().view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = source.astype(np.float16).view(np.uint16)
    got = _hardware_halves(source)
    nan = np.isnan(source)
    assert np.array_equal(got[~nan], expected[~nan])
    assert np.isnan(got.view(np.float16)[nan]).all()


@numba.njit
def _hardware_halves(source: np.ndarray) -> np.ndarray:
    out = np.empty(source.shape[0], dtype=np.uint16)
    for i in range(source.shape[0]):
        out[i] = kv_records._half_bits(source[i])
    return out

"""The key order sorts the keys, and leaves rows that are in order, or in ordered runs, unsorted."""

from __future__ import annotations

from random import Random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laion_spark.kv import order as key_order_module
from laion_spark.kv.order import key_order

INT64 = st.integers(-(2**63), 2**63 - 1)
#: Full-range keys, and small ones (repeated keys, short ordered runs).
KEYS = st.lists(st.one_of(INT64, st.integers(-300, 300)), max_size=400)


@settings(max_examples=200, deadline=None)
@given(KEYS)
def test_key_order_is_a_permutation_that_sorts_the_keys(keys: list[int]) -> None:
    keys = np.array(keys, dtype=np.int64)
    order, sorted_keys = key_order(keys)
    if order is None:
        assert (keys[1:] > keys[:-1]).all()
        assert np.array_equal(sorted_keys, keys)
    else:
        assert np.array_equal(np.sort(order), np.arange(keys.shape[0]))
        assert np.array_equal(sorted_keys, np.sort(keys))
        assert np.array_equal(keys[order], sorted_keys)


@settings(max_examples=100, deadline=None)
@given(st.lists(INT64, min_size=1, max_size=300, unique=True), st.integers(1, 12), st.randoms())
def test_key_order_puts_shuffled_ordered_runs_in_order(keys: list[int], runs: int, random: Random) -> None:
    ordered = np.sort(np.array(keys, dtype=np.int64))
    blocks = np.array_split(ordered, runs)
    random.shuffle(blocks)
    shuffled = np.concatenate(blocks)
    order, sorted_keys = key_order(shuffled)
    assert np.array_equal(sorted_keys, ordered)
    assert np.array_equal(shuffled[order] if order is not None else shuffled, ordered)


def test_key_order_puts_runs_interleaved_batch_by_batch_in_order_without_a_full_sort(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two sorted files read in parallel: their batches arrive alternately (A1 B1 A2 B2 ...).
    a, b = np.arange(0, 40, dtype=np.int64), np.arange(100, 140, dtype=np.int64)
    batches = [part for pair in zip(np.split(a, 4), np.split(b, 4), strict=True) for part in pair]
    keys = np.concatenate(batches)
    starts = np.cumsum([0, *(len(batch) for batch in batches[:-1])])
    monkeypatch.setattr(key_order_module, "_full_sort", None)  # calling it would fail the test
    order, sorted_keys = key_order(keys, starts)
    assert np.array_equal(sorted_keys, np.r_[a, b]) and np.array_equal(keys[order], sorted_keys)


def test_key_order_is_none_for_strictly_increasing_keys_and_sorts_a_million_random_ones() -> None:
    rng = np.random.default_rng(7)
    keys = rng.integers(-(2**63), 2**63 - 1, 1_000_000, dtype=np.int64)
    order, sorted_keys = key_order(np.sort(keys))
    assert order is None and (sorted_keys[1:] > sorted_keys[:-1]).all()
    order, sorted_keys = key_order(keys)
    assert np.array_equal(sorted_keys, np.sort(keys)) and np.array_equal(keys[order], sorted_keys)

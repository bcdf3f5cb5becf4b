"""The radix key order equals numpy's stable argsort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from laion_spark.radix import key_order

INT64 = st.integers(-(2**63), 2**63 - 1)
#: Full-range keys, and keys sharing their high bytes (the radix passes over those digits are skipped).
KEYS = st.lists(st.one_of(INT64, st.integers(-300, 300)), max_size=400)


@settings(max_examples=200, deadline=None)
@given(KEYS)
def test_key_order_equals_a_stable_argsort(keys: list[int]) -> None:
    keys = np.array(keys, dtype=np.int64)
    order, sorted_keys = key_order(keys)
    expected = np.argsort(keys, kind="stable")
    if order is None:
        assert (keys[1:] > keys[:-1]).all()
        assert np.array_equal(sorted_keys, keys)
    else:
        assert np.array_equal(order, expected)
        assert np.array_equal(sorted_keys, keys[expected])


def test_key_order_is_none_for_strictly_increasing_keys_and_sorts_a_million_random_ones() -> None:
    rng = np.random.default_rng(7)
    keys = rng.integers(-(2**63), 2**63 - 1, 1_000_000, dtype=np.int64)
    order, sorted_keys = key_order(np.sort(keys))
    assert order is None and (sorted_keys[1:] > sorted_keys[:-1]).all()
    order, sorted_keys = key_order(keys)
    assert np.array_equal(sorted_keys, np.sort(keys)) and np.array_equal(keys[order], sorted_keys)

"""Order int64 keys (LAION hashes): the rows of a KV build task and the queries of a batch lookup.

Keys already in order, or in a few ordered runs, are not sorted at all. The
rest go to ``np.argsort`` (its default kind: numpy's vectorised sort where the
CPU has AVX2 or AVX-512; on the 2-core AVX-512 development machine 2M random keys
take 65 ms, half the time of a compiled LSD radix sort, with no compile or
cache load in a fresh process). Not stable: callers break ties
by their own rule (:func:`laion_spark.kv.build` by the values).
"""

from __future__ import annotations

import numpy as np

#: Keys in at most this many ascending runs are checked for runs that only need reordering.
MAX_RUNS = 4096


def key_order(keys: np.ndarray, run_starts: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray]:
    """``(order, keys[order])`` with ``order`` the permutation sorting ``keys`` (int64) ascending.

    ``order`` is ``None`` when the keys are already strictly increasing (the
    rows are used as they are). Keys that arrive as ascending, non-overlapping
    runs in any order (the files of a sorted table, read in another order or
    interleaved batch by batch; ``run_starts``: where a batch starts) are put
    in order run by run, when there are at most :data:`MAX_RUNS`. Otherwise
    ``np.argsort``; equal keys come in no particular order.
    """
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    n = keys.shape[0]
    descents = keys[1:] <= keys[:-1]
    count = int(np.count_nonzero(descents))
    if not count:
        return None, keys
    if count < MAX_RUNS:
        starts = np.flatnonzero(descents) + 1
        if run_starts is not None:
            starts = np.union1d(starts, run_starts[(run_starts > 0) & (run_starts < n)])
        if starts.shape[0] < MAX_RUNS:
            order = _order_of_runs(keys, np.r_[0, starts], np.r_[starts, n])
            if order is not None:
                return order, keys[order]
    return _full_sort(keys)


def _order_of_runs(keys: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """The rows run after run by first key, when the ascending runs do not overlap; else ``None``."""
    by_first = np.argsort(keys[starts], kind="stable")
    if not (keys[starts[by_first[1:]]] > keys[ends[by_first[:-1]] - 1]).all():
        return None
    return np.concatenate([np.arange(starts[run], ends[run]) for run in by_first])


def _full_sort(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys)
    return order, keys[order]

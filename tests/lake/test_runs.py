"""Run summaries: count queries added at once, in order."""

from __future__ import annotations

import threading

import pytest

from laion_spark.lake.runs import RunSummary

#: Long enough for any machine; a barrier that is not met in time breaks, so one-after-another fails the test.
_WAIT_S = 60


def test_count_queries_run_at_once_and_their_metrics_keep_the_queries_order() -> None:
    met = threading.Barrier(3, timeout=_WAIT_S)
    second_done = threading.Event()

    def first() -> dict[str, int]:
        met.wait()
        assert second_done.wait(_WAIT_S)  # ends after the second: the order is still the queries'
        return {"rows_out": 3, "shared": 1}

    def second() -> dict[str, int]:
        met.wait()
        second_done.set()
        return {"shared": 2, "tag_rows": 5}

    def third() -> dict[str, int]:
        met.wait()
        return {"tag_rows": 7}

    summary = RunSummary("join-tags", "laion2B-en", metrics={"rows_in": 3})
    summary.add_counts(first, second, third)
    assert list(summary.metrics.items()) == [("rows_in", 3), ("rows_out", 3), ("shared", 2), ("tag_rows", 7)]


def test_a_failed_count_query_raises_once_every_query_has_ended() -> None:
    met = threading.Barrier(2, timeout=_WAIT_S)
    ended = threading.Event()

    def failing() -> dict[str, int]:
        met.wait()
        raise ValueError("cannot read /lake/joined")

    def slow() -> dict[str, int]:
        met.wait()
        ended.set()
        return {"rows_out": 1}

    summary = RunSummary("join-tags", "laion2B-en")
    with pytest.raises(ValueError, match="/lake/joined"):
        summary.add_counts(slow, failing)
    assert ended.is_set() and summary.metrics == {"rows_out": 1}


def test_no_count_queries_add_nothing() -> None:
    summary = RunSummary("join-tags", "laion2B-en", metrics={"rows_in": 0})
    summary.add_counts()
    assert summary.metrics == {"rows_in": 0}

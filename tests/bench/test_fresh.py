"""bench.fresh: a fresh process runs with the environment the benchmark started with, not with what an in-process
engine set since (:data:`laion_spark.engine.factory.SAIL_ENV` must not reach a peer's script); the tables' ratios,
of the fastest runs and the median of the repeats' pairs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.fresh import Run, paired_ratio, run_fresh, table

_PROBE = "LAION_SPARK_BENCH_PROBE"
_WRITE_PROBE = f"import os, sys; open(sys.argv[1], 'w').write(os.environ.get({_PROBE!r}, 'unset'))"


def test_a_fresh_process_gets_the_environment_the_benchmark_started_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_PROBE, "set after the benchmark started")
    seen = tmp_path / "seen"
    run = run_fresh([sys.executable, "-c", _WRITE_PROBE, seen])
    assert seen.read_text() == "unset"
    assert run.seconds > 0 and run.peak_mib > 0
    run_fresh([sys.executable, "-c", _WRITE_PROBE, seen], env={_PROBE: "given"})
    assert seen.read_text() == "given"


def test_paired_ratios_follow_a_drifting_machine_where_the_fastest_runs_do_not() -> None:
    # The machine slows down over the repeats: the peer's fastest run came early, ours late in no repeat.
    peer = [Run(4.0), Run(8.0), Run(8.0)]
    ours = [Run(5.0), Run(7.0), Run(7.2)]
    assert paired_ratio(ours, peer) == pytest.approx(0.9)  # 1.25, 0.875, 0.9
    assert paired_ratio(peer, peer) == 1.0
    text = table("t", [("peer", peer), ("ours", ours)], "peer", ("rows", 100))
    title, header, peer_line, ours_line = text.splitlines()
    assert title == "t (best of 3, interleaved)"
    assert header.split()[-4:] == ["x,", "median", "of", "pairs"]
    assert ours_line.split() == ["ours", "5.00", "20", "1.25", "-", "0.90"]
    assert peer_line.split() == ["peer", "4.00", "25", "1.00", "-", "1.00"]


def test_paired_ratios_need_as_many_runs_on_each_side() -> None:
    with pytest.raises(ValueError, match="as many runs on each side: 1 and 2"):
        paired_ratio([Run(1.0)], [Run(1.0), Run(2.0)])

"""bench.fresh: a fresh process runs with the environment the benchmark started with, not with what an in-process
engine set since (:data:`laion_spark.engine.factory.SAIL_ENV` must not reach a peer's script)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.fresh import run_fresh

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

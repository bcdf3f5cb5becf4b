"""The side-by-side benchmarks run end to end at a small size, and their own checks hold: the peer's output and
ours agree (the KV files byte for byte, the joined rows, the scores). No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REFERENCE, REPO

from bench.join import PARTS

HEAD = REFERENCE / "sa_0_4_vit_l_14_linear.pth"

#: Each benchmark's arguments, and lines its report must hold (the join's phase table has a row per part).
CASES = {
    "join": (["--rows", "30000", "--repeat", "1", "--phases"], ["goal: join-tags", "part by part", *PARTS]),
    "kv": (["--rows", "30000", "--repeat", "1", "--queries", "2000"], ["files byte-identical: yes"]),
    "score": (["--rows", "20000", "--shards", "2", "--repeat", "1", "--head", str(HEAD)], ["goal: score-embeddings"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("bench", sorted(CASES))
def test_benchmark_runs_both_framings_and_its_checks_pass(bench: str, tmp_path: Path) -> None:
    args, expected = CASES[bench]
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", *args, "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "as a user runs it (fresh processes)" in done.stdout
    assert "in-process" in done.stdout
    assert [line for line in expected if line not in done.stdout] == []
    assert not list(tmp_path.glob("*/lake-phases")) and not list(tmp_path.glob("*/duckdb-phases.parquet"))

"""bench/scale.py end to end at a small size, against Sail's server in its own process (the engine whose memory it
measures apart from the driver's): every stage runs at every size and its row counts hold (the stages assert them).
No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

STAGES = {
    "score-embeddings", "join-tags", "subsets", "stats", "aesthetic-embeddings", "build-kv aesthetic",
    "build-kv watermark+safety",
}  # fmt: skip


@pytest.mark.slow
def test_scale_measures_every_stage_at_every_size_on_a_separate_sail_server(tmp_path: Path) -> None:
    sizes = [20_000, 40_000, 80_000]
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.scale", "--engine", "sail-server", "--max-rows", str(sizes[-1]),
            "--sizes", str(len(sizes)), "--part-rows", str(sizes[0]), "--data", tmp_path / "data", "--out", tmp_path / "out",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "scale.json").read_text())
    measured = {(r["stage"], r["rows"]) for r in report["results"]}
    assert measured == {(stage, rows) for stage in STAGES for rows in sizes}
    assert all(r["engine_rss_peak"] > 0 for r in report["results"]), "the server's memory was not measured"
    assert set(report["fits"]) == STAGES

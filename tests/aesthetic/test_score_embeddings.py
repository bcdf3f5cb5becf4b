"""The embedding scoring job: scores, hashes, bad input, resume, overwrite, CLI and classic-Spark parity."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import deltalake
import mmh3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from lake_checks import assert_same_tables
from torch import nn
from typer.testing import CliRunner

from laion_spark.aesthetic.heads import save_linear_head
from laion_spark.aesthetic.params import ScoreEmbeddings
from laion_spark.aesthetic.scoring import (
    REASON_ALL_ZERO,
    REASON_NON_FINITE,
    REJECTED_TABLE,
    TAGS_TABLE,
    score_embeddings,
)
from laion_spark.aesthetic.shards import ShardLayoutError
from laion_spark.cli.app import app
from laion_spark.engine.session import LakeSession

DIM = 768
COLLECTION = "laion2B-en"


def make_shards(
    root: Path,
    sizes: list[int],
    *,
    dim: int = DIM,
    seed: int = 0,
    nan_rows: dict[int, list[int]] | None = None,
    zero_rows: dict[int, list[int]] | None = None,
) -> Path:
    """Write a parquet_npy folder: unit rows cast to float16, metadata with unique url/caption per row."""
    (root / "img_emb").mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index, rows in enumerate(sizes):
        emb = rng.normal(size=(rows, dim)).astype(np.float32)
        emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float16)
        emb[(nan_rows or {}).get(index, [])] = np.nan
        emb[(zero_rows or {}).get(index, [])] = 0
        np.save(root / "img_emb" / f"img_emb_{index:04d}.npy", emb)
        meta = pa.table(
            {
                "url": [f"https://img.example/{seed}/{index}/{i}.jpg" for i in range(rows)],
                "caption": [f"caption {i} of shard {index} ✓" for i in range(rows)],
                "key": [f"{index:05d}{i:04d}" for i in range(rows)],
            }
        )
        pq.write_table(meta, root / "metadata" / f"metadata_{index:04d}.parquet")
    return root


@pytest.fixture(scope="module")
def head_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A v1-style Linear(768, 1) head with LAION-like scale."""
    weight = np.random.default_rng(42).normal(scale=0.3, size=DIM)
    return save_linear_head(tmp_path_factory.mktemp("head") / "test-head.pth", weight, 5.0)


def read_delta(path: Path) -> pd.DataFrame:
    return deltalake.DeltaTable(str(path)).to_pandas()


def _torch_head(kind: str) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A LAION head as torch builds it (v1 Linear or v2 MLP, dropout off) and its published state-dict keys."""
    torch.manual_seed(3)
    if kind == "v1":
        model = nn.Linear(DIM, 1)
        return model.eval(), model.state_dict()
    layers = [nn.Linear(DIM, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2)]
    layers += [nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1)]
    model = nn.Sequential(*layers)
    return model.eval(), {f"layers.{k}": v for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", ["v1", "v2"])
def test_scores_equal_plain_torch_within_1e_3(sail: LakeSession, tmp_path: Path, kind: str) -> None:
    model, state = _torch_head(kind)
    torch.save(state, tmp_path / f"{kind}.pth")
    shards = make_shards(tmp_path / COLLECTION, [700, 500])
    score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=tmp_path / f"{kind}.pth", lake=tmp_path / "lake"))
    tags = read_delta(tmp_path / "lake" / TAGS_TABLE).set_index("hash")["aesthetic"]

    for index in (0, 1):
        emb = torch.from_numpy(np.load(shards / "img_emb" / f"img_emb_{index:04d}.npy").astype(np.float32))
        with torch.no_grad():
            expected = model(emb / emb.norm(dim=1, keepdim=True)).numpy()[:, 0]
        meta = pq.read_table(shards / "metadata" / f"metadata_{index:04d}.parquet").to_pylist()
        hashes = [mmh3.hash64((m["url"] + m["caption"]).encode("utf-8"))[0] for m in meta]
        np.testing.assert_allclose(tags.loc[hashes].to_numpy(), expected, atol=1e-3)


def test_table_rows_carry_collection_shard_and_head(sail: LakeSession, tmp_path: Path, head_file: Path) -> None:
    shards = make_shards(tmp_path / COLLECTION, [300, 200])
    summary = score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake"))
    tags = read_delta(tmp_path / "lake" / TAGS_TABLE)
    assert summary.collection == COLLECTION
    assert set(tags.columns) == {"hash", "aesthetic", "collection", "shard", "head"}
    assert tags.groupby(["collection", "head", "shard"]).size().to_dict() == {
        (COLLECTION, "test-head", 0): 300,
        (COLLECTION, "test-head", 1): 200,
    }


def test_nan_and_zero_rows_are_quarantined_and_rows_add_up(sail: LakeSession, tmp_path: Path, head_file: Path) -> None:
    shards = make_shards(tmp_path / COLLECTION, [400, 300], nan_rows={0: [3, 399]}, zero_rows={1: [0, 150]})
    summary = score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake"))
    tags = read_delta(tmp_path / "lake" / TAGS_TABLE)
    rejected = read_delta(tmp_path / "lake" / REJECTED_TABLE)

    assert sorted(zip(rejected["shard"], rejected["row"], rejected["reason"], strict=True)) == [
        (0, 3, "non_finite"),
        (0, 399, "non_finite"),
        (1, 0, "all_zero"),
        (1, 150, "all_zero"),
    ]
    assert np.isfinite(tags["aesthetic"]).all()
    assert not set(tags["hash"]) & set(rejected["hash"])
    m = summary.metrics
    assert (m["rows_in"], m["rows_scored"], m["rows_rejected"]) == (700, len(tags), len(rejected)) == (700, 696, 4)
    assert m["rows_in"] == m["rows_skipped"] + m["rows_scored"] + m["rows_rejected"] + m["rows_refused"]


def shards_with_a_short_metadata_file(folder: Path) -> Path:
    """Three shards of 200 rows whose second metadata file lost its last row."""
    shards = make_shards(folder, [200, 200, 200])
    short = pq.read_table(shards / "metadata" / "metadata_0001.parquet").slice(0, 199)
    pq.write_table(short, shards / "metadata" / "metadata_0001.parquet")
    return shards


def test_row_count_mismatch_refuses_the_run_before_anything_is_written(
    sail: LakeSession, tmp_path: Path, head_file: Path
) -> None:
    shards = shards_with_a_short_metadata_file(tmp_path / COLLECTION)
    with pytest.raises(ShardLayoutError, match=r"1 of 3 shard\(s\) refused, first shard 1 .* has 199"):
        score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake"))
    assert not (tmp_path / "lake").exists()


def test_row_count_mismatch_with_skip_refused_scores_the_others(
    sail: LakeSession, tmp_path: Path, head_file: Path
) -> None:
    shards = shards_with_a_short_metadata_file(tmp_path / COLLECTION)
    summary = score_embeddings(
        sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake", skip_refused=True)
    )

    assert [(r.index, r.reason) for r in summary.refused] == [
        (1, "img_emb_0001.npy has 200 rows but metadata_0001.parquet has 199")
    ]
    assert sorted(read_delta(tmp_path / "lake" / TAGS_TABLE)["shard"].unique()) == [0, 2]
    assert (summary.metrics["shards_refused"], summary.metrics["rows_refused"]) == (1, 199)


def test_wrong_embedding_width_refuses_the_shard(sail: LakeSession, tmp_path: Path, head_file: Path) -> None:
    shards = make_shards(tmp_path / COLLECTION, [100], dim=512)
    summary = score_embeddings(
        sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake", skip_refused=True)
    )
    assert [r.reason for r in summary.refused] == ["embedding width 512 does not match the head's 768"]
    assert summary.metrics["rows_scored"] == 0


def test_metadata_without_caption_refuses_the_shard(sail: LakeSession, tmp_path: Path, head_file: Path) -> None:
    shards = make_shards(tmp_path / COLLECTION, [100])
    path = shards / "metadata" / "metadata_0000.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["caption"]), path)
    summary = score_embeddings(
        sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake", skip_refused=True)
    )
    assert [r.reason for r in summary.refused] == ["metadata_0000.parquet lacks column(s) caption"]


def test_rerun_skips_shards_already_scored(sail: LakeSession, tmp_path: Path, head_file: Path) -> None:
    shards = make_shards(tmp_path / COLLECTION, [150, 150, 150])
    score_embeddings(
        sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake", shards_per_commit=2)
    )
    version = deltalake.DeltaTable(str(tmp_path / "lake" / TAGS_TABLE)).version()
    again = score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake"))

    assert (again.metrics["shards_skipped"], again.metrics["shards_scored"]) == (3, 0)
    assert deltalake.DeltaTable(str(tmp_path / "lake" / TAGS_TABLE)).version() == version
    assert len(read_delta(tmp_path / "lake" / TAGS_TABLE)) == 450


def test_commits_once_per_group_of_shards(sail: LakeSession, tmp_path: Path, head_file: Path) -> None:
    shards = make_shards(tmp_path / COLLECTION, [50] * 5)
    score_embeddings(
        sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake", shards_per_commit=2)
    )
    history = deltalake.DeltaTable(str(tmp_path / "lake" / TAGS_TABLE)).history()
    assert len(history) == 1 + 3  # the empty table's creation, then one commit per group


def test_missing_rejected_rows_are_restored_without_rescoring(
    sail: LakeSession, tmp_path: Path, head_file: Path
) -> None:
    shards = make_shards(tmp_path / COLLECTION, [200, 200], zero_rows={1: [7]})
    score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake"))
    # as after a crash between the scores' commit and the rejected rows' commit
    shutil.rmtree(tmp_path / "lake" / REJECTED_TABLE)
    version = deltalake.DeltaTable(str(tmp_path / "lake" / TAGS_TABLE)).version()
    again = score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake"))

    assert deltalake.DeltaTable(str(tmp_path / "lake" / TAGS_TABLE)).version() == version
    assert read_delta(tmp_path / "lake" / REJECTED_TABLE)[["shard", "row"]].values.tolist() == [[1, 7]]
    assert (again.metrics["shards_skipped"], again.metrics["rows_rejected"]) == (1, 1)


def test_shard_changed_since_scored_is_refused_not_mixed(sail: LakeSession, tmp_path: Path, head_file: Path) -> None:
    shards = make_shards(tmp_path / COLLECTION, [120, 120])
    score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake"))
    make_shards(tmp_path / "bigger", [120, 130])
    for sub, name in (("img_emb", "img_emb_0001.npy"), ("metadata", "metadata_0001.parquet")):
        (tmp_path / "bigger" / sub / name).replace(shards / sub / name)
    with pytest.raises(ShardLayoutError, match="rerun with --overwrite"):
        score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake"))
    again = score_embeddings(
        sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake", skip_refused=True)
    )

    assert [r.index for r in again.refused] == [1]
    assert "rerun with --overwrite" in again.refused[0].reason
    assert read_delta(tmp_path / "lake" / TAGS_TABLE).groupby("shard").size().to_dict() == {0: 120, 1: 120}


def test_overwrite_replaces_only_this_head_and_collection(sail: LakeSession, tmp_path: Path, head_file: Path) -> None:
    lake = tmp_path / "lake"
    en = make_shards(tmp_path / COLLECTION, [100, 100], nan_rows={0: [1]})
    nolang = make_shards(tmp_path / "laion1B-nolang", [80], seed=1)
    score_embeddings(sail, ScoreEmbeddings(embeddings=en, head=head_file, lake=lake))
    score_embeddings(sail, ScoreEmbeddings(embeddings=nolang, head=head_file, lake=lake))
    make_shards(tmp_path / "fresh", [60], seed=2)
    for sub in ("img_emb", "metadata"):
        for path in (en / sub).iterdir():
            path.unlink()
        for path in (tmp_path / "fresh" / sub).iterdir():
            path.replace(en / sub / path.name)
    summary = score_embeddings(sail, ScoreEmbeddings(embeddings=en, head=head_file, lake=lake, overwrite=True))

    tags = read_delta(lake / TAGS_TABLE)
    assert tags.groupby(["collection", "shard"]).size().to_dict() == {(COLLECTION, 0): 60, ("laion1B-nolang", 0): 80}
    assert read_delta(lake / REJECTED_TABLE).empty
    assert summary.metrics["rows_scored"] == 60


def test_run_summary_is_recorded_in_runs_table(sail: LakeSession, tmp_path: Path, head_file: Path) -> None:
    shards = make_shards(tmp_path / COLLECTION, [90], zero_rows={0: [0]})
    summary = score_embeddings(sail, ScoreEmbeddings(embeddings=shards, head=head_file, lake=tmp_path / "lake"))
    runs = read_delta(tmp_path / "lake" / "runs")
    recorded = runs[runs["run_id"] == summary.run_id].set_index("metric")["value"].to_dict()
    assert recorded == summary.metrics
    assert (recorded["rows_scored"], recorded["rows_rejected"]) == (89, 1)


def test_resume_after_sigkill_scores_each_shard_once(cli_on_sail: None, tmp_path: Path, head_file: Path) -> None:
    """The killed run is a fresh process; its rerun goes through the CLI in this one, on the shared session."""
    sizes = [1500] * 8
    shards = make_shards(tmp_path / COLLECTION, sizes)
    lake = tmp_path / "lake"
    args = ["score-embeddings", "--embeddings", str(shards), "--head", str(head_file), "--lake", str(lake)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "laion_spark", *args, "--shards-per-commit", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_commit = lake / TAGS_TABLE / "_delta_log" / f"{1:020d}.json"  # version 0 creates the empty table
    deadline = time.monotonic() + 120
    while not first_commit.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = read_delta(lake / TAGS_TABLE)["shard"].nunique()
    assert 1 <= committed < len(sizes), "the kill should land between the first and the last commit"

    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0, rerun.output
    tags = read_delta(lake / TAGS_TABLE)
    assert tags.groupby("shard").size().to_dict() == dict(enumerate(sizes))
    assert not tags.duplicated(["shard", "hash"]).any()
    assert re.search(rf"shards_skipped\s+{committed}\n", rerun.stdout), rerun.stdout


def test_cli_refuses_a_run_with_a_bad_shard_before_writing_anything(
    cli_on_sail: None, tmp_path: Path, head_file: Path
) -> None:
    shards = make_shards(tmp_path / COLLECTION, [50, 50])
    np.save(shards / "img_emb" / "img_emb_0001.npy", np.zeros((50, 512), np.float16))
    args = ["score-embeddings", "--embeddings", str(shards), "--head", str(head_file), "--lake", str(tmp_path / "lake")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "shard 1" in result.stderr and "width 512" in result.stderr
    assert not (tmp_path / "lake").exists()


def test_cli_skip_refused_scores_the_good_shards_and_counts_the_refused(
    cli_on_sail: None, tmp_path: Path, head_file: Path
) -> None:
    shards = make_shards(tmp_path / COLLECTION, [50, 40])
    np.save(shards / "img_emb" / "img_emb_0001.npy", np.zeros((40, 512), np.float16))
    args = ["score-embeddings", "--embeddings", str(shards), "--head", str(head_file), "--lake", str(tmp_path / "lake")]
    result = CliRunner().invoke(app, [*args, "--skip-refused"])
    assert result.exit_code == 0, result.output
    assert "refused shard 1" in result.stderr and "width 512" in result.stderr
    assert re.search(r"rows_refused\s+40\n", result.stdout) and re.search(r"rows_scored\s+50\n", result.stdout)
    assert read_delta(tmp_path / "lake" / TAGS_TABLE)["shard"].unique().tolist() == [0]


def test_cli_reports_missing_head_with_where_to_put_it(
    cli_on_sail: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAION_SPARK_CACHE", str(tmp_path / "cache"))
    shards = make_shards(tmp_path / COLLECTION, [10])
    result = CliRunner().invoke(
        app,
        ["score-embeddings", "--embeddings", str(shards), "--head", "laion-v1-l14", "--lake", str(tmp_path / "lake")],
    )
    assert result.exit_code == 2
    assert str(tmp_path / "cache" / "heads") in result.stderr


@pytest.mark.classic
def test_classic_spark_delta_scores_equal_sail_delta(classic_run: Path, reference_run: Path) -> None:
    """score-embeddings of every collection on classic Spark, one shard per commit: the same scores and the same
    quarantined rows (the sample's planted NaN and all-zero embeddings) as on Sail."""
    assert_same_tables(classic_run, reference_run, [TAGS_TABLE, REJECTED_TABLE])
    reasons = read_delta(classic_run / "lake" / REJECTED_TABLE)["reason"]
    assert sorted(reasons) == [REASON_ALL_ZERO, REASON_NON_FINITE]

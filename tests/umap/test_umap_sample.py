"""sample-for-umap: the hand-off table, exact row counts, the same rows on Sail and classic Spark, bad input refused."""

from __future__ import annotations

from pathlib import Path

import deltalake
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from lake_checks import assert_same_tables
from pyspark.sql import functions as F
from typer.testing import CliRunner
from umap_data import make_subset

from laion_spark.cli import app
from laion_spark.lake.columns import ColumnError
from laion_spark.lake.tables import TableNotFoundError, write_table
from laion_spark.stage import ParamError
from laion_spark.umap import UmapError, sample_for_umap
from laion_spark.umap.params import SampleForUmap
from laion_spark.umap.sample import first_by_rank, rank_key


def write_subset(lake, lake_dir: Path, table: pa.Table, name: str = "subset_aesthetics_6plus") -> None:
    write_table(lake, lake.spark.createDataFrame(table), lake_dir / name, mode="overwrite")


def delta_rows(path: Path) -> pd.DataFrame:
    frame = deltalake.DeltaTable(str(path)).to_pandas()
    return frame.sort_values(["hash", "URL", "TEXT"], ignore_index=True, na_position="first")


def test_the_sample_keeps_the_subset_columns_and_exactly_the_rows_asked_for(sail, tmp_path):
    subset = make_subset(500, seed=1)
    write_subset(sail, tmp_path, subset)
    summary = sample_for_umap(sail, SampleForUmap(lake=tmp_path, subset="aesthetics_6plus", rows=120, seed=3))
    sample = delta_rows(tmp_path / "umap_sample")
    assert list(deltalake.DeltaTable(str(tmp_path / "umap_sample")).schema().to_arrow().names) == subset.column_names
    assert len(sample) == 120
    assert summary.metrics == {"subset_rows": 500, "requested_rows": 120, "rows": 120, "seed": 3}
    every = subset.to_pandas()
    assert sample["hash"].isin(every["hash"]).all()
    runs = deltalake.DeltaTable(str(tmp_path / "runs")).to_pandas()
    assert set(runs.loc[runs["job"] == "sample-for-umap", "target"]) == {"umap_sample"}


def test_the_sample_is_the_rows_with_the_smallest_seeded_hash_as_a_full_sort_gives(sail, tmp_path):
    write_subset(sail, tmp_path, make_subset(5000, seed=2))
    frame = sail.spark.read.format("delta").load(str(tmp_path / "subset_aesthetics_6plus"))
    chosen, total = first_by_rank(frame, 100, seed=11)
    full_sort = frame.orderBy(rank_key(11), "hash", *(c for c in frame.columns if c != "hash")).limit(100)
    assert total == 5000
    got = chosen.toPandas().sort_values(["hash", "URL"], ignore_index=True)
    want = full_sort.toPandas().sort_values(["hash", "URL"], ignore_index=True)
    pd.testing.assert_frame_equal(got, want)
    ranks = frame.select(rank_key(11).alias("r"), "hash").toPandas().sort_values("r")
    assert sorted(got["hash"]) == sorted(ranks["hash"].head(100))


def test_a_subset_smaller_than_rows_is_taken_whole(sail, tmp_path):
    write_subset(sail, tmp_path, make_subset(40, seed=3))
    summary = sample_for_umap(sail, SampleForUmap(lake=tmp_path, subset="subset_aesthetics_6plus", rows=1000, seed=0))
    assert summary.metrics["rows"] == summary.metrics["subset_rows"] == 40


def test_other_seeds_pick_other_rows(sail, tmp_path):
    write_subset(sail, tmp_path, make_subset(400, seed=4))
    frame = sail.spark.read.format("delta").load(str(tmp_path / "subset_aesthetics_6plus"))
    picks = [set(first_by_rank(frame, 50, seed)[0].toPandas()["hash"]) for seed in (0, 1, 0)]
    assert picks[0] == picks[2] and picks[0] != picks[1]


@pytest.mark.classic
def test_the_same_seed_gives_the_same_sample_on_sail_and_on_classic_spark(classic_run, reference_run):
    """sample-for-umap picks the same rows of the subset on both engines, and umap lays them out the same."""
    assert_same_tables(classic_run, reference_run, ["umap_sample", "umap"])
    sample = DeltaTable(str(classic_run / "lake" / "umap_sample")).to_pyarrow_table()
    subset = DeltaTable(str(classic_run / "lake" / "subset_aesthetics_6plus")).to_pyarrow_table()
    assert 0 < sample.num_rows < subset.num_rows


def test_bad_requests_are_refused_before_anything_is_written(sail, tmp_path):
    write_subset(sail, tmp_path, make_subset(50, seed=6))
    with pytest.raises(ParamError, match="rows: expected an integer >= 1, got 0"):
        sample_for_umap(sail, SampleForUmap(lake=tmp_path, subset="aesthetics_6plus", rows=0, seed=0))
    with pytest.raises(ParamError, match="subset: '../joined' is not a subset name"):
        sample_for_umap(sail, SampleForUmap(lake=tmp_path, subset="../joined", rows=10, seed=0))
    with pytest.raises(TableNotFoundError, match="subset_laion_art"):
        sample_for_umap(sail, SampleForUmap(lake=tmp_path, subset="laion_art", rows=10, seed=0))
    lacking = sail.spark.read.format("delta").load(str(tmp_path / "subset_aesthetics_6plus")).drop("AESTHETIC_SCORE")
    write_table(sail, lacking, tmp_path / "subset_no_score", mode="overwrite")
    with pytest.raises(ColumnError, match="AESTHETIC_SCORE"):
        sample_for_umap(sail, SampleForUmap(lake=tmp_path, subset="no_score", rows=10, seed=0))
    assert not (tmp_path / "umap_sample").exists()


def test_a_sample_with_other_columns_is_not_overwritten_silently(sail, tmp_path):
    subset = make_subset(60, seed=7)
    write_subset(sail, tmp_path, subset)
    sample_for_umap(sail, SampleForUmap(lake=tmp_path, subset="aesthetics_6plus", rows=20, seed=0))
    wider = sail.spark.createDataFrame(subset).withColumn("LANGUAGE", F.lit("en"))
    write_table(sail, wider, tmp_path / "subset_laion_art", mode="overwrite")
    with pytest.raises(UmapError, match="remove the table folder"):
        sample_for_umap(sail, SampleForUmap(lake=tmp_path, subset="laion_art", rows=20, seed=0))
    assert "LANGUAGE" not in deltalake.DeltaTable(str(tmp_path / "umap_sample")).schema().to_arrow().names


def test_the_command_prints_the_run_and_refuses_a_missing_subset_in_one_line(sail, tmp_path, cli_on_sail, monkeypatch):
    write_subset(sail, tmp_path, make_subset(80, seed=8))
    ok = CliRunner().invoke(
        app, ["sample-for-umap", "--lake", str(tmp_path), "--subset", "aesthetics_6plus", "--rows", "30"]
    )
    assert ok.exit_code == 0, ok.output
    assert "sample-for-umap [*] -> umap_sample" in ok.output and "30" in ok.output
    bad = CliRunner().invoke(app, ["sample-for-umap", "--lake", str(tmp_path), "--subset", "nope", "--rows", "30"])
    assert bad.exit_code == 2
    assert (
        bad.output.strip().startswith("error: ")
        and "subset_nope" in bad.output
        and len(bad.output.strip().splitlines()) == 1
    )

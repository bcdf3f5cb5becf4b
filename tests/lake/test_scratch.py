"""A run's scratch copy in the lake: read back as computed, removed however the block ends, others' left alone."""

from __future__ import annotations

import logging

import pyarrow.parquet as pq
import pytest

from laion_spark.lake.layout import SCRATCH_FOLDER, lake_tables
from laion_spark.lake.scratch import remove_scratch, scratch_copy, scratch_path


def test_the_copy_is_read_back_uncompressed_and_removed_with_its_folders(sail, tmp_path) -> None:
    lake_dir = tmp_path / "lake"
    frame = sail.spark.range(1000).selectExpr("id AS hash", "CAST(id % 7 AS DOUBLE) AS aesthetic")

    with scratch_copy(sail, lake_dir, "join-tags", "run1", frame) as copy:
        files = sorted((lake_dir / SCRATCH_FOLDER / "join-tags" / "run1").glob("*.parquet"))
        assert files
        column = pq.ParquetFile(files[0]).metadata.row_group(0).column(0)
        assert column.compression == "UNCOMPRESSED" and "RLE_DICTIONARY" not in column.encodings
        assert sorted(tuple(r) for r in copy.collect()) == [(i, float(i % 7)) for i in range(1000)]

    assert not (lake_dir / SCRATCH_FOLDER).exists()


def test_the_copy_is_removed_when_the_block_fails_and_another_runs_copy_stays(sail, tmp_path) -> None:
    lake_dir = tmp_path / "lake"
    other = tmp_path / "lake" / SCRATCH_FOLDER / "join-tags" / "run-of-another-process"
    other.mkdir(parents=True)

    with (
        pytest.raises(RuntimeError, match="the write failed"),
        scratch_copy(sail, lake_dir, "join-tags", "run2", sail.spark.range(10)),
    ):
        assert (lake_dir / SCRATCH_FOLDER / "join-tags" / "run2").is_dir()
        raise RuntimeError("the write failed")

    assert not (lake_dir / SCRATCH_FOLDER / "join-tags" / "run2").exists()
    assert other.is_dir()


def test_the_copys_place_is_in_the_lake_for_folders_and_uris(tmp_path) -> None:
    assert scratch_path(tmp_path, "join-tags", "abc") == str(tmp_path.resolve() / "_staging" / "join-tags" / "abc")
    assert scratch_path("s3://bucket/lake/", "join-tags", "abc") == "s3://bucket/lake/_staging/join-tags/abc"


def test_a_copy_that_cannot_be_removed_is_named_in_a_warning_and_the_run_goes_on(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="laion_spark.lake.scratch"):
        remove_scratch("dbfs:/lake/_staging/join-tags/abc")
        remove_scratch("mock:///lake/_staging/join-tags/never-written")  # nothing there: nothing to say

    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "could not remove the scratch copy dbfs:/lake/_staging/join-tags/abc"
    ]


def test_a_copy_left_by_an_interrupted_run_is_no_table_of_the_lake(sail, tmp_path) -> None:
    sail.spark.range(3).write.format("delta").save(str(tmp_path / "joined"))
    (tmp_path / SCRATCH_FOLDER / "join-tags" / "killed-run").mkdir(parents=True)

    assert lake_tables(tmp_path) == [str(tmp_path.resolve() / "joined")]

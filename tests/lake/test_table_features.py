"""Delta protocols: what each engine writes, and one clear refusal of a table feature the running engine cannot write.

Both engines write every lake table with protocol ``(1, 2)`` and no table features (the whole-pipeline record is
in ``tests/lake/test_two_engines.py``). A table from elsewhere may need more: the refusal comes before anything is
written, in one line naming the table, the feature and the engine, exit 2.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import deltalake
import pyarrow as pa
import pytest

from laion_spark.engine.features import LEGACY_WRITER_FEATURES, SAIL_WRITER_FEATURES
from laion_spark.lake import TableFeatureError, read_protocol, write_table
from laion_spark.lake.protocol import Protocol


def add_protocol(path: Path, protocol: dict) -> None:
    """Commit a protocol change by hand (as a newer writer, or ALTER TABLE ... SET TBLPROPERTIES, would)."""
    version = deltalake.DeltaTable(str(path)).version() + 1
    commit = path / "_delta_log" / f"{version:020d}.json"
    commit.write_text(
        json.dumps({"commitInfo": {"timestamp": 0, "operation": "SET TBLPROPERTIES"}})
        + "\n"
        + json.dumps({"protocol": protocol})
        + "\n"
    )


def small(sail, tmp_path: Path) -> Path:
    path = tmp_path / "t"
    write_table(sail, sail.spark.range(5).selectExpr("id", "cast(id as string) as c"), path, mode="overwrite")
    return path


def test_sail_writes_protocol_1_2_without_features(sail, tmp_path) -> None:
    """The record: a table Sail creates needs reader 1 and writer 2 (appendOnly and invariants), nothing else."""
    path = small(sail, tmp_path)
    assert read_protocol(path) == Protocol(1, 2)
    assert read_protocol(path).writer_needs() == LEGACY_WRITER_FEATURES[2] <= SAIL_WRITER_FEATURES


def test_a_feature_sail_cannot_write_is_refused_in_one_line_before_anything_is_written(sail, tmp_path) -> None:
    """Guard: write_table reads the table's protocol and refuses the features outside the engine's set (without it
    Sail's own error comes only after the job computed its rows, and unknown features are not refused at all)."""
    path = small(sail, tmp_path)
    add_protocol(path, {"minReaderVersion": 1, "minWriterVersion": 7, "writerFeatures": ["appendOnly", "laionFuture"]})
    version = deltalake.DeltaTable(str(path)).version()
    with pytest.raises(TableFeatureError, match=r"t: the Delta table needs the table feature laionFuture \(protocol"):
        write_table(sail, sail.spark.range(1).selectExpr("id", "'x' as c"), path, mode="append")
    assert deltalake.DeltaTable(str(path)).version() == version


def test_changedatafeed_from_delta_rs_is_refused_on_sail_by_the_check_and_by_sails_own_error(sail, tmp_path) -> None:
    """Guard: Sail's own refusal ("Unsupported table features required") becomes the same TableFeatureError where the
    engine's features are not known (a remote server): one line, not Sail's message with the plan."""
    path = tmp_path / "cdf"
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "c": ["a", "b"]})
    deltalake.write_deltalake(str(path), data, configuration={"delta.enableChangeDataFeed": "true"})
    assert "changeDataFeed" in read_protocol(path).writer_needs()
    rows = sail.spark.createDataFrame([(3, "c")], "id long, c string")
    with pytest.raises(TableFeatureError, match="changeDataFeed.*which engine sail cannot write"):
        write_table(sail, rows, path, mode="append")
    unknown = dataclasses.replace(sail, delta_writer_features=None, _closers=[])
    with pytest.raises(TableFeatureError, match=r"feature ChangeDataFeed, which engine sail cannot write") as caught:
        write_table(unknown, rows, path, mode="append")
    assert "\n" not in str(caught.value)
    assert deltalake.DeltaTable(str(path)).to_pyarrow_table().num_rows == 2


def test_a_command_on_such_a_table_exits_2_with_one_line(sail, tmp_path, cli_on_sail) -> None:
    from typer.testing import CliRunner

    from laion_spark.cli.app import app

    lake = tmp_path / "lake"
    tags = sail.spark.createDataFrame(
        [(1, 5.5, "laion2B-en", 0, "h")], "hash long, aesthetic float, collection string, shard int, head string"
    )
    write_table(sail, tags, lake / "aesthetic_tags", mode="overwrite")
    write_table(sail, sail.spark.range(1).selectExpr("'x' as collection"), lake / "score_distribution")
    add_protocol(lake / "score_distribution", {"minReaderVersion": 1, "minWriterVersion": 4})
    result = CliRunner().invoke(app, ["stats", "--lake", str(lake)])
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "score_distribution" in lines[0] and "changeDataFeed" in lines[0], result.output
    assert "Traceback" not in result.output


def test_protocols_are_read_from_a_checkpoint_too(tmp_path) -> None:
    """read_protocol finds the protocol in the checkpoint when no later commit carries one."""
    path = tmp_path / "ck"
    data = pa.table({"id": pa.array([1], pa.int64())})
    deltalake.write_deltalake(str(path), data, configuration={"delta.enableChangeDataFeed": "true"})
    for _ in range(2):
        deltalake.write_deltalake(str(path), data, mode="append")
    deltalake.DeltaTable(str(path)).create_checkpoint()
    deltalake.write_deltalake(str(path), data, mode="append")
    assert any(p.name.endswith(".checkpoint.parquet") for p in (path / "_delta_log").iterdir())
    assert "changeDataFeed" in read_protocol(path).writer_needs()

"""The Delta log read without the data: live files and their statistics, checked against ``deltalake``'s reading
of the same tables; ``None`` wherever the log cannot say."""

from __future__ import annotations

import json
from pathlib import Path

import deltalake
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from laion_spark.lake.delta_log import partition_stats

COLUMNS = ["hash", "URL"]


def _rows(n: int, seed: int) -> pa.Table:
    return pa.table(
        {
            "hash": pa.array([None if (i + seed) % 4 == 0 else i for i in range(n)], pa.int64()),
            "URL": pa.array([None if (i + seed) % 3 == 0 else f"u{i}" for i in range(n)], pa.string()),
            "collection": pa.array(["a b" if i % 2 else "c" for i in range(n)]),
        }
    )


def _truth(table: Path, collection: str) -> tuple[int, dict[str, int]]:
    """Rows and nulls per column of one partition, read by ``deltalake``."""
    data = deltalake.DeltaTable(str(table)).to_pyarrow_table()
    data = data.filter(pc.equal(data["collection"], collection))
    return data.num_rows, {c: data[c].null_count for c in COLUMNS}


def test_partition_stats_are_those_of_the_latest_versions_files_after_overwrite_checkpoint_and_append(
    tmp_path,
) -> None:
    table = tmp_path / "t"
    deltalake.write_deltalake(str(table), _rows(40, 0), partition_by=["collection"])
    deltalake.write_deltalake(str(table), _rows(30, 1), partition_by=["collection"], mode="overwrite")
    deltalake.DeltaTable(str(table)).create_checkpoint()
    deltalake.write_deltalake(str(table), _rows(21, 2), partition_by=["collection"], mode="append")
    for collection in ("a b", "c"):
        files = partition_stats(table, {"collection": collection}, COLUMNS)
        assert files is not None and len(files) == 2  # the checkpoint's file and the append's
        rows, nulls = _truth(table, collection)
        assert sum(f.rows for f in files) == rows
        assert {c: sum(f.nulls[c] for f in files) for c in COLUMNS} == nulls
    assert partition_stats(table, {"collection": "none such"}, COLUMNS) == []


def test_a_file_without_null_counts_leaves_the_answer_to_the_data(tmp_path) -> None:
    table = tmp_path / "t"
    deltalake.write_deltalake(str(table), _rows(10, 0), partition_by=["collection"])
    commit = table / "_delta_log" / "00000000000000000000.json"
    lines = [json.loads(line) for line in commit.read_text().splitlines() if line.strip()]
    for action in lines:
        if "add" in action:
            action["add"]["stats"] = json.dumps({"numRecords": 5})  # stats collection turned off for columns
    commit.write_text("\n".join(json.dumps(a) for a in lines) + "\n")
    assert partition_stats(table, {"collection": "c"}, COLUMNS) is None
    assert partition_stats(table, {"collection": "c"}, []) is not None


@pytest.mark.parametrize("where", ["s3://bucket/lake/joined", "plain-folder"])
def test_no_local_log_no_statistics(tmp_path, where) -> None:
    path = where if "://" in where else tmp_path / where
    if not isinstance(path, str):
        path.mkdir()
    assert partition_stats(path, {"collection": "c"}, COLUMNS) is None

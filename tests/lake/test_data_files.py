"""The footer check of a lake table's data files reads what the Delta log says is the table, and nothing else.

A file a concurrent writer has not committed yet (delta-spark creates it empty, then fills it), or one a writer
left when it died before its commit, is no part of the table: a reader must not fail on it. A committed file that
is damaged is still named in one line.
"""

from __future__ import annotations

from pathlib import Path

import deltalake
import pyarrow as pa
import pytest

from laion_spark.lake.delta_log import live_files
from laion_spark.lake.tables import TableError, check_data_files

ROWS = pa.table({"hash": [1, 2, 3], "collection": ["a b", "a b", "c"]})


def _table(path: Path) -> Path:
    deltalake.write_deltalake(str(path), ROWS, partition_by=["collection"])
    deltalake.write_deltalake(str(path), ROWS, partition_by=["collection"], mode="overwrite")  # removes v0's files
    return path


def _on_disk(table: Path) -> set[str]:
    """The data files of the table's latest version per the ``deltalake`` package, relative to it, as on disk."""
    return {
        str(Path(uri.removeprefix("file://")).relative_to(table))
        for uri in deltalake.DeltaTable(str(table)).file_uris()
    }


def test_live_files_are_the_latest_versions_files_after_adds_removes_and_a_checkpoint(tmp_path) -> None:
    table = _table(tmp_path / "t")
    assert live_files(table) == _on_disk(table) and len(live_files(table)) == 2
    deltalake.DeltaTable(str(table)).create_checkpoint()
    deltalake.write_deltalake(str(table), ROWS, partition_by=["collection"], mode="append")
    assert live_files(table) == _on_disk(table) and len(live_files(table)) == 4
    assert all((table / f).is_file() for f in live_files(table))


def test_a_file_not_yet_committed_or_left_by_a_dead_writer_is_not_checked(tmp_path) -> None:
    table = _table(tmp_path / "t")
    folder = next(p for p in table.iterdir() if p.name.startswith("collection="))
    (folder / "part-00000-in-flight.c000.snappy.parquet").write_bytes(b"")
    (folder / "part-00001-dead-writer.c000.snappy.parquet").write_bytes(b"PAR1 cut")
    check_data_files(table)


def test_a_damaged_committed_file_is_named(tmp_path) -> None:
    table = _table(tmp_path / "t")
    damaged = sorted(live_files(table))[0]
    (table / damaged).write_bytes(b"junk")
    with pytest.raises(TableError, match="is not readable parquet"):
        check_data_files(table)


def test_without_a_complete_log_every_parquet_file_is_checked(tmp_path) -> None:
    table = _table(tmp_path / "t")
    (table / "_delta_log" / f"{0:020d}.json").unlink()  # a gap before version 1: the live files are unknown
    assert live_files(table) is None
    folder = next(p for p in table.iterdir() if p.name.startswith("collection="))
    (folder / "part-00000-in-flight.c000.snappy.parquet").write_bytes(b"")
    with pytest.raises(TableError, match="part-00000-in-flight.c000.snappy.parquet is not readable parquet"):
        check_data_files(table)

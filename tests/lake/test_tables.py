"""Writing lake tables (``laion_spark.lake.tables``): a Parquet lake's files carry the codec the session names."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import _restore

from laion_spark.engine.session import LakeSession
from laion_spark.lake.tables import PARQUET_CODEC, write_table


@pytest.mark.parametrize("codec", ["snappy", "gzip"])
def test_a_parquet_lake_is_written_with_the_sessions_codec(sail: LakeSession, tmp_path: Path, codec: str) -> None:
    """Sail 0.7.2 takes ``spark.sql.parquet.compression.codec`` but would write zstd, its own default."""
    conf = sail.spark.conf
    before = {PARQUET_CODEC: conf.get(PARQUET_CODEC, None)}
    conf.set(PARQUET_CODEC, codec)
    try:
        lake = LakeSession(sail.spark, "sail", "parquet")
        rows = sail.spark.range(1000).selectExpr("id", "CAST(id AS STRING) AS text", "'laion2B-en' AS collection")
        write_table(
            lake, rows, tmp_path / "t", partition_by=["collection"], replace_partition={"collection": "laion2B-en"}
        )
    finally:
        _restore(conf, before)
    files = list((tmp_path / "t").rglob("*.parquet"))
    assert files
    codecs = {
        (f.name, meta.row_group(g).column(c).compression)
        for f in files
        for meta in [pq.ParquetFile(f).metadata]
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    }
    assert {found for _, found in codecs} == {codec.upper()}, codecs

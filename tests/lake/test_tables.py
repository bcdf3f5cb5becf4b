"""Writing lake tables (``laion_spark.lake.tables``): a Parquet lake's files carry the codec the session names."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from laion_spark.engine.factory import open_session
from laion_spark.lake.tables import PARQUET_CODEC, write_table


@pytest.mark.parametrize("codec", ["snappy", "gzip"])
def test_a_parquet_lake_is_written_with_the_sessions_codec(cli_on_sail: None, tmp_path: Path, codec: str) -> None:
    """Sail 0.7.2 takes ``spark.sql.parquet.compression.codec`` but would write zstd, its own default."""
    with open_session("sail", conf={PARQUET_CODEC: codec}, table_format="parquet") as lake:
        rows = lake.spark.range(1000).selectExpr("id", "CAST(id AS STRING) AS text", "'laion2B-en' AS collection")
        write_table(
            lake, rows, tmp_path / "t", partition_by=["collection"], replace_partition={"collection": "laion2B-en"}
        )
    codecs = {}
    for file in (tmp_path / "t").rglob("*.parquet"):
        meta = pq.ParquetFile(file).metadata
        codecs[file.name] = {
            meta.row_group(g).column(c).compression for g in range(meta.num_row_groups) for c in range(meta.num_columns)
        }
    assert codecs and all(found == {codec.upper()} for found in codecs.values()), codecs

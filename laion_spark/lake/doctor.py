"""``doctor``: prove an engine starts, computes and round-trips a partitioned lake table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from .tables import read_table, write_table

if TYPE_CHECKING:
    from ..engine.session import LakeSession

#: Rows of the doctor's check table.
CHECK_ROWS = 100_000


def check_engine(lake: LakeSession, scratch: Path) -> dict[str, object]:
    """Run a fixed aggregate and a partitioned table write/read under ``scratch``; return what they gave.

    The result holds ``engine, spark_version, table_format, aggregate, table_rows,
    table_id_sum`` and ``unapplied`` (settings the engine did not apply).
    """
    df = lake.spark.range(0, CHECK_ROWS).withColumn("bucket", F.col("id") % 7)
    aggregate = [
        [int(b), int(t), int(n)]
        for b, t, n in df.groupBy("bucket").agg(F.sum("id"), F.count("*")).orderBy("bucket").collect()
    ]
    table = scratch / "doctor_table"
    write_table(
        lake,
        df.withColumn("part", (F.col("bucket") % 2).cast("string")),
        table,
        partition_by=["part"],
        mode="overwrite",
    )
    read_back = read_table(lake, table).agg(F.count("*"), F.sum("id")).collect()[0]
    return {
        "engine": lake.engine,
        "spark_version": lake.spark.version,
        "table_format": lake.table_format,
        "aggregate": aggregate,
        "table_rows": int(read_back[0]),
        "table_id_sum": int(read_back[1]),
        "unapplied": dict(lake.unapplied),
    }

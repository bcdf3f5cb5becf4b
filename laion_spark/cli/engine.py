"""``laion-spark doctor``: start an engine and prove it computes and round-trips a table."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import typer
from pyspark.sql import functions as F

from ..cli_options import ConfOpt, EngineOpt, ProfileOpt, RemoteOpt, TableFormatOpt, open_cli_session
from ..lake import read_table, write_table
from ..session import LakeSession


def check_engine(lake: LakeSession, scratch: Path) -> dict[str, object]:
    """Run a fixed aggregate and a partitioned table write/read; return what they gave."""
    df = lake.spark.range(0, 100_000).withColumn("bucket", F.col("id") % 7)
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
    }


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""

    @app.command()
    def doctor(
        engine: EngineOpt = "sail",
        remote: RemoteOpt = None,
        profile: ProfileOpt = None,
        conf: ConfOpt = None,
        table_format: TableFormatOpt = None,
        as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    ) -> None:
        """Start an engine, run a small aggregate and a table round trip, and report."""
        started = time.perf_counter()
        with (
            open_cli_session(engine, remote, profile, conf, table_format) as lake,
            tempfile.TemporaryDirectory() as tmp,
        ):
            result = check_engine(lake, Path(tmp))
        result["seconds"] = round(time.perf_counter() - started, 2)
        if as_json:
            typer.echo(json.dumps(result))
            return
        ok = result["table_rows"] == 100_000
        typer.echo(
            f"engine {result['engine']} (Spark API {result['spark_version']}), tables in {result['table_format']}: "
            f"{'OK' if ok else 'FAILED'} in {result['seconds']} s"
        )
        if not ok:
            raise typer.Exit(1)

"""``laion-spark sql``: one read-only SQL query over every table of a lake (:mod:`laion_spark.lake.sql`)."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import EngineChoice, LakeOpt, spark_command


def register(app: typer.Typer) -> None:
    """Add ``sql`` to ``app``."""

    @spark_command(app, "sql")
    def sql(
        query: Annotated[
            str,
            typer.Argument(
                help="One read-only query (SELECT, WITH ... SELECT, VALUES, SHOW, DESCRIBE, EXPLAIN); every lake "
                "table is a view by its folder name, and no other relation can be named."
            ),
        ],
        lake_dir: LakeOpt,
        limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to print at most.")] = 100,
        as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of an aligned table.")] = False,
        *,
        engine: EngineChoice,
    ) -> None:
        """Run a read-only query over the lake, e.g. `SELECT collection, count(*) FROM subset_laion_art GROUP BY 1`.

        The statement is parsed before the engine sees it: anything but one query over the lake's tables (DELETE,
        INSERT, CREATE, delta.`path`, a file) is refused with exit status 2, and nothing is written.
        """
        from ..lake.sql import lake_sql

        with engine.open() as lake:
            rows = lake_sql(lake, lake_dir, query).limit(limit).toPandas()
        typer.echo(rows.to_csv(index=False).rstrip("\n") if as_csv else rows.to_string(index=False))

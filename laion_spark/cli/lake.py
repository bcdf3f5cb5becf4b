"""``laion-spark sql``: a SQL query over every table of a lake."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import EngineChoice, LakeOpt, spark_command


def register(app: typer.Typer) -> None:
    """Add ``sql`` to ``app``."""

    @spark_command(app, "sql")
    def sql(
        query: Annotated[str, typer.Argument(help="SQL; every lake table is a view by its folder name.")],
        lake_dir: LakeOpt,
        limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to print at most.")] = 100,
        as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of an aligned table.")] = False,
        *,
        engine: EngineChoice,
    ) -> None:
        """Run a query over the lake, e.g. `SELECT collection, count(*) FROM subset_laion_art GROUP BY 1`."""
        from ..lake.sql import lake_sql

        with engine.open() as lake:
            rows = lake_sql(lake, lake_dir, query).limit(limit).toPandas()
        typer.echo(rows.to_csv(index=False).rstrip("\n") if as_csv else rows.to_string(index=False))

"""``laion-spark doctor``: start an engine and prove it computes and round-trips a table."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import typer

from .options import EngineChoice, spark_command


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to ``app``."""

    @spark_command(app, "doctor")
    def doctor(
        as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
        *,
        engine: EngineChoice,
    ) -> None:
        """Start an engine, run a small aggregate and a table round trip, and report."""
        from ..lake.doctor import CHECK_ROWS, check_engine

        started = time.perf_counter()
        with engine.open() as lake, tempfile.TemporaryDirectory() as tmp:
            result = check_engine(lake, Path(tmp))
        result["seconds"] = round(time.perf_counter() - started, 2)
        if as_json:
            typer.echo(json.dumps(result))
            return
        ok = result["table_rows"] == CHECK_ROWS
        typer.echo(
            f"engine {result['engine']} (Spark API {result['spark_version']}), tables in {result['table_format']}: "
            f"{'OK' if ok else 'FAILED'} in {result['seconds']} s"
        )
        if not ok:
            raise typer.Exit(1)

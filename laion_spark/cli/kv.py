"""``laion-spark build-kv``, ``kv-get`` and ``kv-verify``: LAION's on-disk hash -> score KV."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..kv.params import DEFAULT_MAX_ROWS_PER_RANGE, ON_DUPLICATE
from .options import EngineChoice, spark_command

ValueFormatOpt = Annotated[
    str,
    typer.Option(
        "--value-format",
        help="struct codes of the values, one per value: e (float16), f (float32), d (float64). "
        "The file does not record it: read with the format it was built with.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``build-kv``, ``kv-get`` and ``kv-verify`` to ``app``."""

    @spark_command(app, "build-kv")
    def build_kv_command(
        table: Annotated[str, typer.Option("--table", help="Delta table, or Parquet folder or file, to read.")],
        value_columns: Annotated[
            str,
            typer.Option(
                "--value-columns", help="Comma-separated value columns, e.g. aesthetic or pwatermark,punsafe."
            ),
        ],
        out: Annotated[Path, typer.Option("--out", help="KV file to write (replaced atomically).")],
        value_format: Annotated[
            str | None, typer.Option("--value-format", help="One struct code per value column; default e for each.")
        ] = None,
        key_column: Annotated[str, typer.Option("--key-column", help="Integer key column.")] = "hash",
        on_duplicate: Annotated[
            str,
            typer.Option(
                "--on-duplicate",
                help=f"Rows sharing a key: {', '.join(ON_DUPLICATE)} (first: smallest values, max: largest values, "
                "NaN last; error: refuse the table).",
            ),
        ] = "first",
        max_rows_per_range: Annotated[
            int,
            typer.Option(
                "--max-rows-per-range", min=1, help="Rows per key range, sorted in one task: bounds task memory."
            ),
        ] = DEFAULT_MAX_ROWS_PER_RANGE,
        where: Annotated[str | None, typer.Option("--where", help="SQL filter applied first.")] = None,
        staging: Annotated[
            str | None,
            typer.Option(
                "--staging",
                help="Folder for the per-range fragment files the tasks write; default OUT.staging. "
                "On a cluster: a shared filesystem path the executors write and the driver reads.",
            ),
        ] = None,
        lake_dir: Annotated[
            Path | None, typer.Option("--lake", help="Also record the run summary in LAKE/runs.")
        ] = None,
        *,
        engine: EngineChoice,
    ) -> None:
        """Build a static_ondisk_kv file (int64 hash -> float16 values) from a table, sorted by Spark."""
        from ..kv import build_kv

        columns = [c.strip() for c in value_columns.split(",") if c.strip()]
        started = time.perf_counter()
        with engine.open() as lake:
            result = build_kv(
                lake,
                table,
                out,
                columns,
                key_column=key_column,
                value_format=value_format,
                on_duplicate=on_duplicate,
                max_rows_per_range=max_rows_per_range,
                where=where,
                staging=staging,
                lake_dir=lake_dir,
            )
        typer.echo(result.summary().format())
        typer.echo(
            f"{result.path}: {result.rows_written:,} records of {result.record_size} bytes (q + {result.value_format}) "
            f"in {time.perf_counter() - started:.1f} s; rows in {result.rows_in:,} = written {result.rows_written:,} "
            f"+ duplicates dropped {result.duplicates_dropped:,} + null keys rejected {result.null_keys_rejected:,}"
        )

    @app.command("kv-get")
    def kv_get(
        file: Annotated[Path, typer.Argument(help="KV file.")],
        key: Annotated[int | None, typer.Option("--hash", help="The key (LAION hash).")] = None,
        url: Annotated[str | None, typer.Option("--url", help="URL, with --text: look up their LAION hash.")] = None,
        text: Annotated[str | None, typer.Option("--text", help="TEXT (caption), with --url.")] = None,
        value_format: ValueFormatOpt = "e",
    ) -> None:
        """Print the values stored for a hash (or a URL + TEXT pair); exit 1 when absent."""
        from ..kv import KV, laion_key

        if (key is None) == (url is None and text is None):
            raise typer.BadParameter("give either --hash H or --url U --text T", param_hint="--hash")
        if key is None:
            key = laion_key(url, text)
        kv = KV(file, value_format)
        values = kv.get(key)
        if values is None:
            typer.echo(f"hash {key} not found in {file} ({len(kv):,} records)", err=True)
            raise typer.Exit(1)
        typer.echo("\t".join([str(key), *(repr(v) for v in values)]))

    @app.command("kv-verify")
    def kv_verify(
        file: Annotated[Path, typer.Argument(help="KV file.")],
        value_format: ValueFormatOpt = "e",
    ) -> None:
        """Check a KV file: size a multiple of the record size, keys sorted and unique."""
        from ..kv import KV

        kv = KV(file, value_format)
        kv.verify()
        typer.echo(
            f"{file}: OK, {len(kv):,} records of {kv.record_size} bytes (q + {value_format}), keys sorted, unique"
        )

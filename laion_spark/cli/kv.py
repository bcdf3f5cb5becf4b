"""``laion-spark build-kv``, ``kv-get`` and ``kv-verify``: LAION's on-disk hash -> score KV."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..cli_options import ConfOpt, EngineOpt, ProfileOpt, RemoteOpt, TableFormatOpt, open_cli_session
from ..kv import KV, KVFormatError, laion_key
from ..kv_build import DEFAULT_MAX_ROWS_PER_RANGE, ON_DUPLICATE, KVBuildError, build_kv
from ..runs import record_run

ValueFormatOpt = Annotated[
    str,
    typer.Option(
        "--value-format",
        help="struct codes of the values, one per value: e (float16), f (float32), d (float64). "
        "The file does not record it: read with the format it was built with.",
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _open_kv(file: Path, value_format: str) -> KV:
    try:
        return KV(file, value_format)
    except (KVFormatError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``build-kv``, ``kv-get`` and ``kv-verify`` to ``app``."""

    @app.command("build-kv")
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
                help="Rows sharing a key: first (smallest values, NaN last), max (largest values, NaN last) or error.",
            ),
        ] = "first",
        max_rows_per_range: Annotated[
            int,
            typer.Option("--max-rows-per-range", help="Rows per key range, sorted in one task: bounds task memory."),
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
        engine: EngineOpt = "sail",
        remote: RemoteOpt = None,
        profile: ProfileOpt = None,
        conf: ConfOpt = None,
        table_format: TableFormatOpt = None,
    ) -> None:
        """Build a static_ondisk_kv file (int64 hash -> float16 values) from a table, sorted by Spark."""
        if on_duplicate not in ON_DUPLICATE:
            raise typer.BadParameter(f"choose one of {', '.join(ON_DUPLICATE)}", param_hint="--on-duplicate")
        columns = [c.strip() for c in value_columns.split(",") if c.strip()]
        started = time.perf_counter()
        with open_cli_session(engine, remote, profile, conf, table_format) as lake:
            try:
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
                )
            except (KVBuildError, KVFormatError, FileNotFoundError) as exc:
                raise _fail(str(exc)) from None
            summary = result.summary()
            if lake_dir is not None:
                record_run(lake, lake_dir, summary)
        typer.echo(summary.format())
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
        if (key is None) == (url is None and text is None):
            raise typer.BadParameter("give either --hash H or --url U --text T", param_hint="--hash")
        if key is None:
            key = laion_key(url, text)
        kv = _open_kv(file, value_format)
        try:
            values = kv[key]
        except KeyError:
            raise _fail(f"hash {key} not found in {file} ({len(kv):,} records)") from None
        typer.echo("\t".join([str(key), *(repr(v) for v in values)]))

    @app.command("kv-verify")
    def kv_verify(
        file: Annotated[Path, typer.Argument(help="KV file.")],
        value_format: ValueFormatOpt = "e",
    ) -> None:
        """Check a KV file: size a multiple of the record size, keys sorted and unique."""
        kv = _open_kv(file, value_format)
        try:
            kv.verify()
        except KVFormatError as exc:
            raise _fail(str(exc)) from None
        typer.echo(
            f"{file}: OK, {len(kv):,} records of {kv.record_size} bytes (q + {value_format}), keys sorted, unique"
        )

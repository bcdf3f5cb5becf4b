"""``laion-spark kv-get`` and ``kv-verify``: read LAION's on-disk hash -> score KV (``build-kv`` is a stage command)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ValueFormatOpt = Annotated[
    str,
    typer.Option(
        "--value-format",
        help="struct codes of the values, one per value: e (float16), f (float32), d (float64). "
        "The file does not record it: read with the format it was built with.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``kv-get`` and ``kv-verify`` to ``app``."""

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

"""Options shared by every ``laion-spark`` command that runs Spark."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from .session import ENGINES, LakeSession, open_session

EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        "-e",
        help=f"Spark engine: {', '.join(ENGINES)}. 'sail' runs in-process and needs no cluster.",
        envvar="LAION_SPARK_ENGINE",
    ),
]
RemoteOpt = Annotated[
    str | None,
    typer.Option(
        "--remote", help="Spark Connect URL for --engine remote, e.g. sc://host:15002.", envvar="SPARK_REMOTE"
    ),
]
ProfileOpt = Annotated[
    list[str] | None,
    typer.Option("--profile", "-p", help="Extra Spark profile from conf/ (name or path); repeatable."),
]
ConfOpt = Annotated[
    list[str] | None,
    typer.Option("--conf", "-c", help="Spark setting KEY=VALUE; repeatable; wins over profiles."),
]
TableFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--table-format", help="Lake table format: delta (default) or parquet (classic Spark without Delta jars)."
    ),
]


def parse_conf(pairs: list[str] | None) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}`` with a clear error on a bad pair."""
    settings: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--conf")
        settings[key.strip()] = value.strip()
    return settings


def open_cli_session(
    engine: str, remote: str | None, profile: list[str] | None, conf: list[str] | None, table_format: str | None = None
) -> LakeSession:
    """Open the session a command asked for with the shared options."""
    return open_session(engine, remote=remote, profiles=profile, conf=parse_conf(conf), table_format=table_format)


@contextmanager
def input_errors(*expected: type[Exception], label: str = "error") -> Iterator[None]:
    """Turn the ``expected`` bad-input errors into one ``LABEL: message`` line on stderr and exit code 2."""
    try:
        yield
    except expected as err:
        typer.echo(f"{label}: {err}", err=True)
        raise typer.Exit(2) from None

"""Options shared by the ``laion-spark`` commands, declared once.

Every command that runs Spark is declared with :func:`spark_command`: it gains
the engine options (``--engine --remote --profile --conf --table-format --delta-jars``)
and receives them as one :class:`EngineChoice` argument named ``engine``.
Only light modules are imported here: a command imports its stage when it runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..engine.names import ENGINES, TABLE_FORMATS
from ..errors import InputError

if TYPE_CHECKING:
    from ..engine.session import LakeSession

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
        "--table-format",
        help=f"Lake table format: {' or '.join(TABLE_FORMATS)} (parquet: classic Spark without the Delta jars).",
    ),
]
DeltaJarsOpt = Annotated[
    Path | None,
    typer.Option(
        "--delta-jars",
        help="For --engine local on an air-gapped machine: folder with the pinned Delta jars (gradle sparkJars).",
        envvar="LAION_SPARK_DELTA_JARS",
    ),
]
LakeOpt = Annotated[Path, typer.Option("--lake", help="Lake folder holding the tables (joined, aesthetic_tags ...).")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Pipeline config YAML (default: pipeline.yaml of the packaged conf/)."),
]


@dataclass(frozen=True)
class EngineChoice:
    """The engine options a command was given; :meth:`open` starts the session they describe."""

    engine: str = "sail"
    remote: str | None = None
    profile: tuple[str, ...] = ()
    conf: tuple[str, ...] = ()
    table_format: str | None = None
    delta_jars: Path | None = None

    def open(self) -> LakeSession:
        """Open the session (a context manager); raises :class:`~laion_spark.engine.EngineError` for bad options."""
        from ..engine.factory import open_session

        return open_session(
            self.engine,
            remote=self.remote,
            profiles=list(self.profile),
            conf=parse_conf(self.conf),
            table_format=self.table_format,
            delta_jars=self.delta_jars,
        )


def parse_conf(pairs: tuple[str, ...] | list[str] | None) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}``; :class:`InputError` naming a pair without ``=``."""
    settings: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--conf {pair!r}: expected KEY=VALUE")
        settings[key.strip()] = value.strip()
    return settings


_ENGINE_PARAMETERS = [
    inspect.Parameter("engine", inspect.Parameter.KEYWORD_ONLY, default="sail", annotation=EngineOpt),
    inspect.Parameter("remote", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=RemoteOpt),
    inspect.Parameter("profile", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ProfileOpt),
    inspect.Parameter("conf", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfOpt),
    inspect.Parameter("table_format", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=TableFormatOpt),
    inspect.Parameter("delta_jars", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=DeltaJarsOpt),
]
_ENGINE_NAMES = [p.name for p in _ENGINE_PARAMETERS]


def spark_command(app: typer.Typer, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command that runs Spark: ``def cmd(..., engine: EngineChoice)``.

    The command's own parameters come first in ``--help``, then the shared
    engine options; the command receives those as one :class:`EngineChoice`.
    """

    def register(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "engine"]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            given = {key: kwargs.pop(key) for key in _ENGINE_NAMES}
            choice = EngineChoice(
                engine=given["engine"],
                remote=given["remote"],
                profile=tuple(given["profile"] or ()),
                conf=tuple(given["conf"] or ()),
                table_format=given["table_format"],
                delta_jars=given["delta_jars"],
            )
            return command(**kwargs, engine=choice)

        run.__signature__ = inspect.Signature([*own, *_ENGINE_PARAMETERS])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in [*own, *_ENGINE_PARAMETERS]}
        return app.command(name)(run)

    return register

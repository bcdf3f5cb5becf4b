"""Commands derived from stage declarations: one option per parameter, its default and help from the field.

:func:`stage_command` registers a :class:`~laion_spark.stage.Stage` class as a ``laion-spark`` command:
``--batch-size`` for the field ``batch_size`` (or the field's ``flags``), a required option for a field
without a default, a flag for a boolean, a repeatable option for a list (comma-separated text when the field
has a ``parse``; ``--x/--no-x`` for a boolean that defaults to true), plus the engine options of :func:`~laion_spark.cli.options.spark_command`. The command
makes the declaration (a refused value names its option: ``--batch-size: expected an integer >= 1, got 0``),
runs it on the chosen engine and prints what the stage says of its result.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Annotated, Any

import typer

from ..aesthetic.params import AestheticEmbeddings, ExportAestheticEmbeddings, ScoreDistribution, ScoreEmbeddings
from ..clip.params import EmbedText, ScoreImages
from ..errors import InputError
from ..ingest.params import JoinTags
from ..kv.params import BuildKV
from ..report.params import Report
from ..stage import Param, ParamError, Stage, params
from ..subsets.params import BuildSubsets
from ..umap.params import SampleForUmap, Umap
from .options import EngineChoice, spark_command

#: Every stage that is a command, in the pipeline's order.
STAGE_COMMANDS: tuple[type[Stage], ...] = (
    ScoreEmbeddings,
    ScoreImages,
    JoinTags,
    BuildSubsets,
    ScoreDistribution,
    AestheticEmbeddings,
    ExportAestheticEmbeddings,
    BuildKV,
    SampleForUmap,
    Umap,
    Report,
    EmbedText,
)


def register(app: typer.Typer) -> None:
    """Add a command for every stage of :data:`STAGE_COMMANDS` to ``app``."""
    for stage in STAGE_COMMANDS:
        stage_command(app, stage)


def stage_command(app: typer.Typer, stage: type[Stage]) -> None:
    """Add ``stage.command`` to ``app``: its options from ``stage``'s fields, its help from its docstring."""
    specs = params(stage)

    def command(*, engine: EngineChoice, **given: Any) -> None:
        declared = declare(stage, {spec.name: given[spec.name] for spec in specs})
        refused = declared.refused_output()  # before the engine starts: nothing is written
        if refused is not None:
            raise InputError(refused.labelled(_option(stage, refused.name)))
        with engine.open() as lake:
            result = declared.run(lake)
        typer.echo(declared.summarize(result))

    command.__name__ = stage.command.replace("-", "_")
    command.__doc__ = inspect.getdoc(stage)
    parameters = [_parameter(spec) for spec in specs]
    engine = inspect.Parameter("engine", inspect.Parameter.KEYWORD_ONLY, annotation=EngineChoice)
    command.__signature__ = inspect.Signature([*parameters, engine])  # type: ignore[attr-defined]
    spark_command(app, stage.command)(command)


def declare(stage: type[Stage], given: dict[str, Any]) -> Stage:
    """``stage`` made from the command line's values (``None``: the field's default); a refused value is an
    :class:`~laion_spark.errors.InputError` naming its option."""
    specs = {spec.name: spec for spec in params(stage)}
    values = {}
    for name, value in given.items():
        spec = specs[name]
        if value is None:
            continue
        try:
            values[name] = spec.parse(value) if spec.parse is not None else value
        except ParamError as err:
            raise InputError(err.labelled(spec.option)) from None
    try:
        return stage(**values)
    except ParamError as err:
        raise InputError(err.labelled(_option(stage, err.name))) from None


def _option(stage: type[Stage], name: str) -> str:
    """The command line's name of the parameter ``name`` of ``stage`` (``name`` itself when it is none)."""
    return next((spec.option for spec in params(stage) if spec.name == name), name)


def _parameter(spec: Param) -> inspect.Parameter:
    if spec.required:
        default, shown = inspect.Parameter.empty, False
    elif spec.parse is not None:  # the command line's text of the default is ``show``; None: the field's default
        default, shown = None, spec.show or False
    else:
        default, shown = spec.default, spec.default is not None
    option = typer.Option(*_flags(spec), help=spec.help, show_default=shown)
    return inspect.Parameter(
        spec.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[_cli_type(spec), option]
    )


def _flags(spec: Param) -> tuple[str, ...]:
    """The option's names; a boolean that defaults to true is switched off with ``--no-...``."""
    if spec.flags:
        return spec.flags
    if _base(spec) is bool and spec.default is True:
        return (f"{spec.option}/--no-{spec.option.removeprefix('--')}",)
    return (spec.option,)


def _base(spec: Param) -> Any:
    """The field's type without ``| None``."""
    args = [a for a in typing.get_args(spec.annotation) if a is not type(None)]
    return args[0] if isinstance(spec.annotation, types.UnionType) and len(args) == 1 else spec.annotation


def _cli_type(spec: Param) -> Any:
    base = _base(spec)
    if spec.parse is not None:
        return str if spec.required else str | None
    if typing.get_origin(base) is tuple:
        return list[str]
    if base is bool:
        return bool
    return base if spec.required else base | None

"""A stage's one declaration: a frozen dataclass whose fields are its parameters.

Each stage package declares its stages in its light ``params`` module (nothing heavy imported)::

    @dataclass(frozen=True, kw_only=True)
    class ScoreImages(Stage):
        '''Embed the images of webdataset tars with CLIP and score them with an aesthetic head.'''

        command: ClassVar[str] = "score-images"
        job: ClassVar[str] = "laion_spark.clip.job:score_images"
        resources: ClassVar[str] = "gpu"

        shards: str = param(help="Glob of webdataset tars.", path=True)
        batch_size: int = param(256, help="Images per model forward.", minimum=1)

A field is one parameter: its one default (none: required) and its one help text, with the bounds the
value must keep. Everything else derives from the fields:

* the library call: ``ScoreImages(shards=..., ...)`` checks every value when it is made
  (:class:`ParamError` naming the parameter), and :meth:`Stage.run` runs the job (``job``, imported then);
* the command line (:mod:`laion_spark.cli.stages`): one option per field, ``--batch-size``, its default and
  help; a refused value names the option;
* the pipeline YAML (:mod:`laion_spark.pipeline.spec`): the stage's section takes every field the pipeline
  does not supply itself (``pipeline=`` says where the pipeline takes it from), checked with the same rules,
  an error naming the key (``pipeline.stages.images.batch_size``);
* ``pipeline --describe``: each parameter with its value.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from .errors import InputError
from .paths import PathError, normalise_path, unwritable

#: Where the pipeline takes a parameter from: the stage's own section of ``pipeline.yaml`` ...
FROM_SECTION = "section"
#: ... ``pipeline.lake`` ...
FROM_LAKE = "lake"
#: ... the stage's section when it sets the key, else ``pipeline.head`` ...
FROM_HEAD = "head"
#: ... the collection the stage runs over (its name, or one of its inputs under ``pipeline.collections``) ...
FROM_COLLECTION = "collection"
#: ... the config file's top level (the safety filter and the subsets).
FROM_CONFIG = "config"
_SUPPLIED = (FROM_LAKE, FROM_COLLECTION, FROM_CONFIG)


class ParamError(InputError):
    """A parameter's value is refused. ``name`` is the field; :meth:`labelled` names it as its caller knows it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem

    def labelled(self, label: str) -> str:
        """The message with the parameter named ``label`` (``--batch-size``, ``pipeline.stages.images.batch_size``)."""
        return f"{label}: {self.problem}"


def param(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    minimum: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
    path: bool = False,
    table: bool = False,
    flags: tuple[str, ...] = (),
    pipeline: str = FROM_SECTION,
    parse: Callable[[str], Any] | None = None,
    show: str | None = None,
) -> Any:
    """A stage parameter: a dataclass field with its default and what the value must be.

    ``minimum`` / ``above``: numbers at least / greater than it. ``choices``: the text values allowed.
    ``path``: a file or folder (``Path`` values become text; the pipeline resolves it against its root), normalised
    here once for every caller by :func:`~laion_spark.paths.normalise_path` (absolute, ``file:`` URIs read,
    a path no engine takes refused).
    ``table``: a table (a path; in the pipeline a bare name is the lake's table of that name).
    ``flags``: the command line's names, when not ``--field-name``. ``pipeline``: where the pipeline takes
    the value from (:data:`FROM_SECTION` ...). ``parse``: turns the command line's text into the value (a
    comma-separated list, a config file; without it a list is a repeatable option); ``show``: the command
    line's text of the default.
    """
    metadata = {
        "help": help,
        "minimum": minimum,
        "above": above,
        "choices": choices,
        "path": path or table,
        "table": table,
        "flags": flags,
        "pipeline": pipeline,
        "parse": parse,
        "show": show,
    }
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Param:
    """One parameter of a stage, as the command line, the YAML and ``--describe`` see it."""

    name: str
    annotation: Any
    default: Any
    help: str
    minimum: float | None
    above: float | None
    choices: tuple[str, ...] | None
    path: bool
    table: bool
    flags: tuple[str, ...]
    pipeline: str
    parse: Callable[[str], Any] | None
    show: str | None

    @property
    def required(self) -> bool:
        """No default: the caller must give it."""
        return self.default is dataclasses.MISSING

    @property
    def option(self) -> str:
        """The command line's main name: ``--batch-size``."""
        return self.flags[0] if self.flags else "--" + self.name.replace("_", "-")

    @property
    def in_section(self) -> bool:
        """Whether the stage's section of ``pipeline.yaml`` may set it."""
        return self.pipeline not in _SUPPLIED

    def check(self, value: Any) -> Any:
        """``value`` as the parameter keeps it (``Path`` -> text, list -> tuple); :class:`ParamError` otherwise."""
        return _checked(self, self.annotation, value)


@dataclass(frozen=True, kw_only=True)
class Stage:
    """Base of every stage declaration (see the module docstring)."""

    #: The ``laion-spark`` command.
    command: ClassVar[str]
    #: ``module:function`` of the job: ``function(lake, stage)`` runs it and returns its result.
    job: ClassVar[str]
    #: What the stage needs: ``cpu`` or ``gpu``.
    resources: ClassVar[str] = "cpu"

    def __post_init__(self) -> None:
        for spec in params(type(self)):
            object.__setattr__(self, spec.name, spec.check(getattr(self, spec.name)))
        self.check()

    def check(self) -> None:
        """Rules that tie parameters together (a stage's own); raise :class:`ParamError` naming one of them."""

    def run(self, lake: Any) -> Any:
        """Run the job on ``lake`` (a :class:`~laion_spark.engine.LakeSession`); returns its result.

        Raises :class:`ParamError` before the job starts when one of its outputs cannot be written
        (:meth:`refused_output`).
        """
        refused = self.refused_output()
        if refused is not None:
            raise refused
        module, function = self.job.split(":")
        return getattr(importlib.import_module(module), function)(lake, self)

    def written(self) -> list[str]:
        """Every path the stage may write: its :meth:`outputs`, and each path parameter that is not one of its
        :meth:`inputs` (a lake folder, where every job records its run; a staging folder)."""
        read = set(self.inputs())
        given = [value for spec, value in self.values() if spec.path and isinstance(value, str) and value not in read]
        return list(dict.fromkeys([*self.outputs(), *given]))

    def refused_output(self) -> ParamError | None:
        """The first of :meth:`written` that nothing can be written at, as a :class:`ParamError` naming the
        parameter it derives from; ``None`` when all can be.

        Probed on the file system (:func:`~laion_spark.paths.unwritable`), so that a lake that is a file or
        an output folder the OS refuses is an input error before anything is written.
        """
        for path in self.written():
            problem = unwritable(path)
            if problem is not None:
                return ParamError(self._owner(path), problem)
        return None

    def _owner(self, path: str) -> str:
        """The path parameter whose value shares the longest leading part with ``path``."""
        names = path.split("/")

        def shared(value: str) -> int:
            return next(
                (i for i, (a, b) in enumerate(zip(names, value.split("/"), strict=False)) if a != b), len(names)
            )

        given = [(spec.name, value) for spec, value in self.values() if spec.path and isinstance(value, str)]
        return max(given, key=lambda pair: shared(pair[1]))[0] if given else "outputs"

    def summarize(self, result: Any) -> str:
        """What the command line and the pipeline print of the job's ``result`` (by default its ``format()``)."""
        return result.format()

    def inputs(self) -> list[str]:
        """Every file, folder or table the stage reads (a stage's own)."""
        raise NotImplementedError(type(self).__name__)

    def outputs(self) -> list[str]:
        """Every file, folder or table the stage writes (a stage's own)."""
        raise NotImplementedError(type(self).__name__)

    def values(self) -> Iterator[tuple[Param, Any]]:
        """Every parameter with its value, in declaration order."""
        for spec in params(type(self)):
            yield spec, getattr(self, spec.name)


@cache
def params(stage: type[Stage]) -> tuple[Param, ...]:
    """The parameters of a stage class, in declaration order."""
    hints = typing.get_type_hints(stage)
    return tuple(
        Param(name=f.name, annotation=hints[f.name], default=_default(f), **f.metadata)
        for f in dataclasses.fields(stage)
        if f.metadata
    )


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _checked(spec: Param, annotation: Any, value: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        (inner,) = [a for a in options if a is not type(None)]
        return _checked(spec, inner, value)
    if typing.get_origin(annotation) is tuple:
        item = typing.get_args(annotation)[0]
        if isinstance(value, str) or not isinstance(value, tuple | list):
            raise ParamError(spec.name, f"expected a list, got {value!r}")
        checked = tuple(_checked(spec, item, v) for v in value)
        if len(set(checked)) != len(checked):
            raise ParamError(spec.name, f"duplicate entries in {list(value)!r}")
        return checked
    if annotation is bool:
        if not isinstance(value, bool):
            raise ParamError(spec.name, f"expected true or false, got {value!r}")
        return value
    if annotation is int or annotation is float:
        return _number(spec, annotation, value)
    if annotation is str:
        if isinstance(value, Path):  # a path, or a name that may be one (a head)
            value = str(value)
        if not isinstance(value, str) or not value:
            raise ParamError(spec.name, f"expected a non-empty text, got {value!r}")
        if spec.choices is not None and value not in spec.choices:
            raise ParamError(spec.name, f"expected one of {', '.join(spec.choices)}, got {value!r}")
        if spec.path:  # the one place a path a user gives is normalised (see laion_spark.paths)
            try:
                return normalise_path(value)
            except PathError as err:
                raise ParamError(spec.name, str(err)) from None
        return value
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ParamError(spec.name, f"expected a {annotation.__name__}, got {value!r}")
    return value


def _number(spec: Param, annotation: type, value: Any) -> int | float:
    kind = "an integer" if annotation is int else "a number"
    fits = isinstance(value, int) if annotation is int else isinstance(value, int | float)
    bounds = [f">= {spec.minimum:g}" for _ in [1] if spec.minimum is not None]
    bounds += [f"> {spec.above:g}" for _ in [1] if spec.above is not None]
    wanted = f"{kind}{' ' + ' and '.join(bounds) if bounds else ''}"
    if isinstance(value, bool) or not fits or value != value:  # value != value: NaN
        raise ParamError(spec.name, f"expected {wanted}, got {value!r}")
    if (spec.minimum is not None and value < spec.minimum) or (spec.above is not None and value <= spec.above):
        raise ParamError(spec.name, f"expected {wanted}, got {value!r}")
    return float(value) if annotation is float else value

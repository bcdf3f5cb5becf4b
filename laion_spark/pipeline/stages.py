"""The pipeline's stages: how each one's section and the pipeline's own values become the runs of its command.

A stage runs its command's declaration (:data:`~.params.PIPELINE_STAGES`): once per collection that has the
input it reads (``score``: ``embeddings``, ``join``: ``metadata``), once over every collection's input when
the parameter is a list (``aesthetic_embeddings``), once per entry of its list (``kv``), else once. The
parameters the pipeline supplies (the ``FROM_*`` of :mod:`laion_spark.stage`) come from here: the lake, the
head, the collections' inputs, the config's subsets. Each run is the same library call as its command, which
records its run in ``runs``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..aesthetic.params import TAGS_TABLE, head_name
from ..config_file import PipelineConfigError
from ..lake.layout import lake_table
from ..paths import PathError
from ..stage import FROM_COLLECTION, FROM_CONFIG, FROM_HEAD, FROM_LAKE, Param, ParamError, Stage, params
from ..subsets.params import SUBSET_KEYS, SubsetsConfig
from .config import PipelineConfig
from .params import PIPELINE_STAGES
from .spec import PipelineSpec

if TYPE_CHECKING:
    from ..engine.session import LakeSession

#: The placeholder of a KV file's ``where`` that stands for the head's name.
HEAD_PLACEHOLDER = "{head}"


@dataclass
class StageContext:
    """What a stage sees: the session, the whole config, and where things are."""

    lake: LakeSession | None
    config: PipelineConfig
    echo: Callable[[str], None]
    #: False: heads stay as given (names are not fetched), for a plan that only describes.
    resolve_heads: bool = True

    @property
    def spec(self) -> PipelineSpec:
        """The ``pipeline:`` section."""
        if self.config.pipeline is None:
            raise PipelineConfigError("pipeline: missing section (the stages' inputs, outputs and parameters)")
        return self.config.pipeline

    @property
    def lake_dir(self) -> str:
        """The lake folder (or URI)."""
        return self.spec.lake_dir

    def head_of(self, given: str) -> str:
        """A head as a stage takes it: a file (relative to ``root``) as its path, a name as its cached file (fetched
        once where there is network)."""
        from ..aesthetic.heads import resolve_head

        local = Path(self.spec.path(given))
        if not self.resolve_heads:
            return str(local) if local.is_file() else given
        return str(resolve_head(local if local.is_file() else given))

    @property
    def subsets(self) -> SubsetsConfig:
        """The config's subsets part (without its ``pipeline:`` section: a stage's fingerprint holds what it uses)."""
        return SubsetsConfig(**{key: getattr(self.config, key) for key in SUBSET_KEYS})

    @cached_property
    def head_path(self) -> str | None:
        """The pipeline's head (``pipeline.head``) as a file, ``None`` when the config names none."""
        return self.head_of(self.spec.head) if self.spec.head is not None else None

    @property
    def head_name(self) -> str | None:
        """The pipeline head's name (what the ``head`` columns hold), ``None`` without one."""
        return head_name(self.spec.head) if self.spec.head is not None else None

    def runs(self, name: str) -> list[Stage]:
        """The runs of stage ``name``, as declarations; raises :class:`PipelineConfigError` naming a refused key."""
        try:
            return self._runs(name)
        except PathError as err:  # a collection's input, the lake or the root
            raise PipelineConfigError(f"pipeline: {err}") from None

    def _runs(self, name: str) -> list[Stage]:
        definition = PIPELINE_STAGES[name]
        section = self.spec.stages[name]
        where = f"pipeline.stages.{name}"
        if definition.many is not None:
            return [
                self._declare(name, entry, f"{where}.{definition.many}[{i}]", {}) for i, entry in enumerate(section)
            ]
        inputs = [p for p in params(definition.stage) if p.pipeline == FROM_COLLECTION and p.name != "collection"]
        if not inputs:
            return [self._declare(name, section, where, {})]
        if any(typing.get_origin(p.annotation) is tuple for p in inputs):
            every = {p.name: tuple(self._inputs(p)) for p in inputs}
            return [self._declare(name, section, where, every)]
        first = next(p for p in inputs if p.required)
        return [
            self._declare(name, section, where, {"collection": c.name, **self._collection(c, inputs)})
            for c in self.spec.collections
            if getattr(c, first.name)
        ]

    def _inputs(self, spec: Param) -> list[str]:
        return [self.spec.path(getattr(c, spec.name)) for c in self.spec.collections if getattr(c, spec.name)]

    def _collection(self, collection: object, inputs: list[Param]) -> dict[str, str]:
        given = {p.name: getattr(collection, p.name) for p in inputs}
        return {name: self.spec.path(path) for name, path in given.items() if path}

    def _declare(self, name: str, section: Mapping[str, Any], where: str, supplied: dict[str, Any]) -> Stage:
        stage = PIPELINE_STAGES[name].stage
        try:
            values = self.spec.resolved(stage, section)
        except PathError as err:
            raise PipelineConfigError(f"{where}: {err}") from None
        for spec in params(stage):
            if spec.pipeline == FROM_LAKE:
                values[spec.name] = self.lake_dir
            elif spec.pipeline == FROM_CONFIG:
                values[spec.name] = self.subsets
            elif spec.pipeline == FROM_HEAD:
                values[spec.name] = self.head_of(section[spec.name]) if spec.name in section else self.head_path
        values.update(supplied)
        values = ADJUST.get(name, _as_given)(self, section, values)
        try:
            declared = stage(**{key: value for key, value in values.items() if value is not None})
        except ParamError as err:
            raise PipelineConfigError(err.labelled(f"{where}.{err.name}")) from None
        self._confine(declared, section, where)
        return declared

    def _confine(self, declared: Stage, section: Mapping[str, Any], where: str) -> None:
        """Refuse a path the section gives a stage to write (:meth:`~laion_spark.stage.Stage.written`) outside the
        pipeline root and the lake: a name from the config never leads a write astray."""
        written = set(declared.written())
        for spec, value in declared.values():
            given = spec.name in section and spec.path and isinstance(value, str)
            if given and value in written and not self.spec.confines(value):
                raise PipelineConfigError(
                    f"{where}.{spec.name}: {section[spec.name]!r} leads to {value}, outside the pipeline root "
                    f"{self.spec.root_dir} and the lake {self.lake_dir}: the pipeline writes only there"
                )


def _as_given(ctx: StageContext, section: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return values


def _join(ctx: StageContext, section: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Aesthetic tags from the lake's own table are the pipeline head's (unless the section picks a head)."""
    if "aesthetic_head" not in section and values.get("aesthetic_tags") == lake_table(ctx.lake_dir, TAGS_TABLE):
        values["aesthetic_head"] = ctx.head_name
    return values


def _kv(ctx: StageContext, section: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A file's filter, with ``{head}`` standing for the pipeline head's name."""
    where = values.get("where")
    if where is not None and HEAD_PLACEHOLDER in where:
        if ctx.head_name is None:
            raise PipelineConfigError(f"pipeline.head: missing required key (a kv filter names {HEAD_PLACEHOLDER})")
        values["where"] = where.replace(HEAD_PLACEHOLDER, ctx.head_name)
    return values


#: Stage-specific values the pipeline derives from others.
ADJUST: dict[str, Callable[[StageContext, Mapping[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "join": _join,
    "kv": _kv,
}

"""The ``pipeline:`` section of ``pipeline.yaml``: where each stage reads and writes, and its parameters.

::

    pipeline:
      root: .                     # relative paths below are relative to it (``--root`` overrides)
      lake: lake
      head: laion-v1-l14          # name or .pth path: every stage's head unless its section sets one
      collections:
        laion2B-en:
          metadata: sample/metadata/laion2B-en
          embeddings: sample/embeddings/laion2B-en
          watermark_tags: sample/tags/laion2B-en/watermark
          safety_tags: sample/tags/laion2B-en/safety
      stages:                     # a stage runs when it is listed here
        score: {shards_per_commit: 8}
        join: {aesthetic_tags: aesthetic_tags}
        kv:
          files:
            - {table: aesthetic_tags, value_columns: [aesthetic], out: kv/aesthetic.kv}
        ...

A stage's section takes the parameters of its command (its declaration, see :mod:`laion_spark.stage`): every
one but those the pipeline supplies (the lake, the collections' inputs, the config's subsets), under the
command's names, checked by the same rules. The ``kv`` section holds a list of ``build-kv`` sections under
``files``. Every key is checked when the file is loaded; an error names its path
(``pipeline.stages.kv.files[1].table: missing required key``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config_file import PipelineConfigError, mapping, text
from ..lake.layout import COLLECTIONS, lake_table
from ..paths import is_uri, is_within, normalise_path
from ..stage import FROM_HEAD, ParamError, Stage, params
from .params import PIPELINE_STAGES

#: The inputs a collection may name, each a parameter of the stages that read it.
COLLECTION_INPUTS = ("metadata", "embeddings", "watermark_tags", "safety_tags")


@dataclass(frozen=True)
class CollectionInputs:
    """The input files of one collection (each optional: a stage uses the ones it needs)."""

    name: str
    metadata: str | None = None
    embeddings: str | None = None
    watermark_tags: str | None = None
    safety_tags: str | None = None


@dataclass(frozen=True)
class PipelineSpec:
    """The parsed ``pipeline:`` section: :meth:`path` resolves a path of it against ``root``; ``stages`` holds each
    configured stage's checked section (a list of sections for ``kv``)."""

    root: str = "."
    lake: str = "lake"
    head: str | None = None
    collections: tuple[CollectionInputs, ...] = ()
    stages: Mapping[str, Any] = field(default_factory=dict)

    def path(self, value: str) -> str:
        """``value`` against ``root`` (URIs and absolute paths as they are), normalised as every path is
        (:func:`~laion_spark.paths.normalise_path`); raises :class:`~laion_spark.paths.PathError`."""
        return normalise_path(value, base=self.root_dir)

    def table(self, value: str) -> str:
        """A table parameter: a bare name is the lake's table of that name, anything else a path (:meth:`path`)."""
        if "/" in value or "\\" in value or is_uri(value) or value.startswith("file:"):
            return self.path(value)
        return lake_table(self.lake_dir, value)

    @property
    def root_dir(self) -> str:
        """The root folder, normalised (relative: to the working directory)."""
        return normalise_path(self.root)

    @property
    def lake_dir(self) -> str:
        """The lake folder."""
        return self.path(self.lake)

    def confines(self, path: str) -> bool:
        """Whether a stage may write at ``path`` (normalised): under the root or the lake (URIs: under the lake)."""
        return is_within(path, self.lake_dir) or (not is_uri(path) and is_within(path, self.root_dir))

    def resolved(self, stage: type[Stage], section: Mapping[str, Any]) -> dict[str, Any]:
        """The section's values with its paths resolved against ``root`` and its tables against the lake."""
        values = dict(section)
        for spec in params(stage):
            value = values.get(spec.name)
            if isinstance(value, str) and spec.path:
                values[spec.name] = self.table(value) if spec.table else self.path(value)
        return values


def parse_pipeline_spec(data: object) -> PipelineSpec:
    """Validate the ``pipeline:`` mapping and build the :class:`PipelineSpec`; raises :class:`PipelineConfigError`."""
    top = mapping(data, "pipeline", optional={"root", "lake", "head", "collections", "stages"})
    collections = _collections(top.get("collections") or {})
    raw_stages = mapping(top.get("stages") or {}, "pipeline.stages", optional=set(PIPELINE_STAGES))
    stages = {name: _stage(name, raw_stages[name]) for name in PIPELINE_STAGES if name in raw_stages}
    head = top.get("head")
    if head is not None:
        text(head, "pipeline.head")
    for name, section in stages.items():
        needs = [
            spec.name for spec in params(PIPELINE_STAGES[name].stage) if spec.pipeline == FROM_HEAD and spec.required
        ]
        for one in section if isinstance(section, list) else [section]:
            if needs and head is None and needs[0] not in one:
                raise PipelineConfigError(f"pipeline.head: missing required key (stage {name} scores with it)")
    return PipelineSpec(
        root=text(top.get("root", "."), "pipeline.root"),
        lake=text(top.get("lake", "lake"), "pipeline.lake"),
        head=head,
        collections=collections,
        stages=stages,
    )


def _collections(data: object) -> tuple[CollectionInputs, ...]:
    raw = mapping(data, "pipeline.collections", optional=set(COLLECTIONS))
    inputs = []
    for name, entry in raw.items():
        where = f"pipeline.collections.{name}"
        item = mapping(entry, where, optional=set(COLLECTION_INPUTS))
        paths = {key: text(value, f"{where}.{key}") for key, value in item.items() if value is not None}
        inputs.append(CollectionInputs(name=name, **paths))
    return tuple(inputs)


def _stage(name: str, data: object) -> dict[str, Any] | list[dict[str, Any]]:
    where = f"pipeline.stages.{name}"
    definition = PIPELINE_STAGES[name]
    if definition.many is None:
        return section(definition.stage, data or {}, where)
    item = mapping(data or {}, where, required={definition.many}, optional=set())
    entries = item[definition.many]
    if not isinstance(entries, list) or not entries:
        raise PipelineConfigError(f"{where}.{definition.many}: expected a non-empty list, got {entries!r}")
    return [section(definition.stage, entry, f"{where}.{definition.many}[{i}]") for i, entry in enumerate(entries)]


def section(stage: type[Stage], data: object, where: str) -> dict[str, Any]:
    """A stage's section checked against its declaration: the keys the pipeline does not supply, required ones
    present, each value kept by the parameter's rules; raises :class:`PipelineConfigError` naming the key."""
    specs = [spec for spec in params(stage) if spec.in_section]
    required = {spec.name for spec in specs if spec.required and spec.pipeline != FROM_HEAD}
    item = mapping(data, where, required=required, optional={spec.name for spec in specs} - required)
    values = {}
    for spec in specs:
        if spec.name in item:
            try:
                checked = spec.check(item[spec.name])
            except ParamError as err:
                raise PipelineConfigError(err.labelled(f"{where}.{spec.name}")) from None
            # a path stays as written: it is resolved against the root (known once --root is) by PipelineSpec.path
            values[spec.name] = item[spec.name] if spec.path and isinstance(item[spec.name], str) else checked
    return values

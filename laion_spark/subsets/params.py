"""The subsets stage: its declaration, the safety filter and subset definitions of ``pipeline.yaml``, and LAION's
published subset layout (nothing heavy imported).

The config file's top level (``conf/pipeline.yaml``)::

    safety: {pwatermark_below: 0.8, punsafe_below: 0.5, keep_null_tags: false}
    subsets:
      - {name: laion_art, threshold: 8.0, extra_columns: [LANGUAGE]}
    shuffle_seed: 42
    target_files: 4

is checked strictly: an unknown key, a value of the wrong type or a duplicate subset name is a
:class:`~laion_spark.config_file.PipelineConfigError` naming the key (``subsets[2].threshold: expected a
number, got 'high'``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..config_file import PipelineConfigError, is_int, mapping, number, read_yaml, strings
from ..engine.profiles import conf_dir
from ..ingest.params import JOINED_TABLE
from ..lake.layout import COLLECTIONS, lake_table
from ..stage import FROM_CONFIG, FROM_LAKE, ParamError, Stage, param

#: LAION's published subset columns, in order (``improved_aesthetics_*``, laion-aesthetics-12m-umap).
PUBLISHED_COLUMNS = ("URL", "TEXT", "WIDTH", "HEIGHT", "similarity", "punsafe", "pwatermark", "AESTHETIC_SCORE", "hash")
#: The kind of each published column (see :data:`laion_spark.lake.KINDS`).
PUBLISHED_KINDS = {
    column: {"URL": "string", "TEXT": "string", "WIDTH": "integer", "HEIGHT": "integer", "hash": "integer"}.get(
        column, "floating"
    )
    for column in PUBLISHED_COLUMNS
}
#: Keys of the config file's top level that define the subsets.
SUBSET_KEYS = ("safety", "subsets", "shuffle_seed", "target_files")
_SUBSET_NAME = re.compile(r"[a-z0-9_]+")
_TABLE_PREFIX = "subset_"


def subset_table(subset: str) -> str:
    """``aesthetics_6plus`` or ``subset_aesthetics_6plus`` -> ``subset_aesthetics_6plus``.

    Raises :class:`~laion_spark.stage.ParamError` (``subset``) for a name that is not a subset's.
    """
    name = subset if subset.startswith(_TABLE_PREFIX) else f"{_TABLE_PREFIX}{subset}"
    if not _SUBSET_NAME.fullmatch(name[len(_TABLE_PREFIX) :]):
        raise ParamError("subset", f"{subset!r} is not a subset name (lower-case letters, digits and _)")
    return name


@dataclass(frozen=True)
class SafetyConfig:
    """LAION's safety filter: ``pwatermark < pwatermark_below AND punsafe < punsafe_below``."""

    pwatermark_below: float = 0.8
    punsafe_below: float = 0.5
    keep_null_tags: bool = False


@dataclass(frozen=True)
class SubsetSpec:
    """One subset: rows passing the safety filter with ``aesthetic > threshold``."""

    name: str
    threshold: float
    collections: tuple[str, ...] | None = None
    extra_columns: tuple[str, ...] = ()

    @property
    def table(self) -> str:
        """Name of the subset's lake table, ``subset_<name>``."""
        return subset_table(self.name)


@dataclass(frozen=True)
class SubsetsConfig:
    """The safety filter, the subsets, the seeded shuffle and the file count of each subset table."""

    safety: SafetyConfig
    subsets: tuple[SubsetSpec, ...]
    shuffle_seed: int | None = None
    target_files: int | None = None


def default_config_path() -> Path:
    """``pipeline.yaml`` of :func:`~laion_spark.engine.conf_dir` (packaged, ``$LAION_SPARK_CONF_DIR`` or ``conf/``)."""
    return Path(str(conf_dir().joinpath("pipeline.yaml")))


def load_subsets_config(path: str | Path | None = None) -> SubsetsConfig:
    """The subsets of the config file at ``path`` (default: :func:`default_config_path`); its ``pipeline:`` section is
    left to :func:`laion_spark.pipeline.load_pipeline_config`.

    Raises :class:`PipelineConfigError` naming the file and the key (or the YAML line) that is wrong.
    """
    source = Path(path) if path is not None else default_config_path()
    if not source.is_file():
        raise PipelineConfigError(f"pipeline config not found: {source}")
    top = mapping(read_yaml(source), "config", required={"subsets"}, optional={*SUBSET_KEYS, "pipeline"})
    try:
        return parse_subsets_config(top)
    except PipelineConfigError as err:
        raise PipelineConfigError(f"{source}: {err}") from None


def parse_subsets_config(top: Mapping) -> SubsetsConfig:
    """The :data:`SUBSET_KEYS` of an already-parsed config mapping; raises :class:`PipelineConfigError` naming the key."""
    safety = _safety(top.get("safety", {}))
    raw_subsets = top["subsets"]
    if not isinstance(raw_subsets, list) or not raw_subsets:
        raise PipelineConfigError(f"subsets: expected a non-empty list, got {raw_subsets!r}")
    subsets = tuple(_subset(item, f"subsets[{i}]") for i, item in enumerate(raw_subsets))
    seen: set[str] = set()
    for i, spec in enumerate(subsets):
        if spec.name in seen:
            raise PipelineConfigError(f"subsets[{i}].name: duplicate subset name {spec.name!r}")
        seen.add(spec.name)
    seed = top.get("shuffle_seed")
    if seed is not None and not is_int(seed):
        raise PipelineConfigError(f"shuffle_seed: expected an integer or null, got {seed!r}")
    files = top.get("target_files")
    if files is not None and (not is_int(files) or files < 1):
        raise PipelineConfigError(f"target_files: expected a positive integer or null, got {files!r}")
    return SubsetsConfig(safety=safety, subsets=subsets, shuffle_seed=seed, target_files=files)


def _safety(data: object) -> SafetyConfig:
    safety = mapping(data, "safety", optional={"pwatermark_below", "punsafe_below", "keep_null_tags"})
    defaults = SafetyConfig()
    keep = safety.get("keep_null_tags", defaults.keep_null_tags)
    if not isinstance(keep, bool):
        raise PipelineConfigError(f"safety.keep_null_tags: expected true or false, got {keep!r}")
    return SafetyConfig(
        pwatermark_below=number(safety.get("pwatermark_below", defaults.pwatermark_below), "safety.pwatermark_below"),
        punsafe_below=number(safety.get("punsafe_below", defaults.punsafe_below), "safety.punsafe_below"),
        keep_null_tags=keep,
    )


def _subset(data: object, where: str) -> SubsetSpec:
    item = mapping(data, where, required={"name", "threshold"}, optional={"collections", "extra_columns"})
    name = item["name"]
    if not isinstance(name, str) or not _SUBSET_NAME.fullmatch(name):
        raise PipelineConfigError(f"{where}.name: expected lower-case letters, digits and _, got {name!r}")
    collections = item.get("collections")
    if collections is not None:
        collections = strings(collections, f"{where}.collections")
        unknown = [c for c in collections if c not in COLLECTIONS]
        if unknown:
            raise PipelineConfigError(
                f"{where}.collections: unknown collection {unknown[0]!r}; known: {', '.join(COLLECTIONS)}"
            )
    extra = strings(item.get("extra_columns", []), f"{where}.extra_columns")
    return SubsetSpec(
        name=name,
        threshold=number(item["threshold"], f"{where}.threshold"),
        collections=collections,
        extra_columns=extra,
    )


CONFIG_HELP = (
    "Pipeline config YAML with the safety filter and the subsets (default: pipeline.yaml of the packaged conf/)."
)


@dataclass(frozen=True, kw_only=True)
class BuildSubsets(Stage):
    """Filter joined for safety and write one subset_<name> table per configured aesthetic threshold."""

    command: ClassVar[str] = "subsets"
    job: ClassVar[str] = "laion_spark.subsets.build:build_subsets"

    lake: str = param(help="Lake folder holding joined; writes subset_<name> there.", path=True, pipeline=FROM_LAKE)
    config: SubsetsConfig | None = param(
        None, help=CONFIG_HELP, parse=load_subsets_config, pipeline=FROM_CONFIG, show="the packaged pipeline.yaml"
    )

    @property
    def subsets(self) -> SubsetsConfig:
        """The config given, else the packaged one's."""
        return self.config or load_subsets_config()

    def summarize(self, result: object) -> str:
        """One run summary per subset, and a note where the file count is not the configured one."""
        lines = []
        for summary in result:
            lines.append(summary.format())
            files, target = summary.metrics.get("files"), self.subsets.target_files
            if target and files is not None and files != target:
                why = "empty partitions" if files < target else "the engine split partitions"
                lines.append(f"  note: {files} files written, target {target} ({why})")
        return "\n".join(lines)

    def inputs(self) -> list[str]:
        """The joined table."""
        return [lake_table(self.lake, JOINED_TABLE)]

    def outputs(self) -> list[str]:
        """One table per subset."""
        return [lake_table(self.lake, spec.table) for spec in self.subsets.subsets]

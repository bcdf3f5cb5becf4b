"""The pipeline configuration (``conf/pipeline.yaml``): safety filter, subsets, shuffle, file count, stages.

Loaded into frozen dataclasses and validated strictly: an unknown key, a value
of the wrong type or a duplicate subset name is a :class:`PipelineConfigError`
naming the key (``subsets[2].threshold: expected a number, got 'high'``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from ..engine.profiles import conf_dir
from ..lake.collections import COLLECTIONS
from .spec import PipelineSpec, parse_pipeline_spec
from .validate import PipelineConfigError, is_int, mapping, number, read_yaml, strings

_SUBSET_NAME = re.compile(r"^[a-z0-9_]+$")


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
        return f"subset_{self.name}"


@dataclass(frozen=True)
class PipelineConfig:
    """The whole ``pipeline.yaml``."""

    safety: SafetyConfig
    subsets: tuple[SubsetSpec, ...]
    shuffle_seed: int | None = None
    target_files: int | None = None
    #: The ``pipeline:`` section (stage inputs, outputs, parameters); ``None`` when the file has none.
    pipeline: PipelineSpec | None = None


def default_config_path() -> Traversable:
    """``pipeline.yaml`` of :func:`~laion_spark.engine.conf_dir` (packaged, ``$LAION_SPARK_CONF_DIR`` or ``conf/``)."""
    return conf_dir().joinpath("pipeline.yaml")


def load_pipeline_config(path: str | Path | None = None) -> PipelineConfig:
    """Read and validate the YAML file at ``path`` (default: :func:`default_config_path`).

    Raises :class:`PipelineConfigError` naming the file and the key (or the YAML line) that is wrong.
    """
    source = Path(path) if path is not None else default_config_path()
    if not source.is_file():
        raise PipelineConfigError(f"pipeline config not found: {source}")
    data = read_yaml(source)
    path = source
    try:
        return parse_pipeline_config(data)
    except PipelineConfigError as err:
        raise PipelineConfigError(f"{path}: {err}") from None


def parse_pipeline_config(data: object) -> PipelineConfig:
    """Validate an already-parsed mapping and build the :class:`PipelineConfig`."""
    top = mapping(data, "config", required={"subsets"}, optional={"safety", "shuffle_seed", "target_files", "pipeline"})
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
    pipeline = parse_pipeline_spec(top["pipeline"]) if top.get("pipeline") is not None else None
    if pipeline is not None and "umap_sample" in pipeline.stages:
        subset = pipeline.stages["umap_sample"].subset
        if subset not in seen:
            raise PipelineConfigError(
                f"pipeline.stages.umap_sample.subset: {subset!r} is not a configured subset ({', '.join(sorted(seen))})"
            )
    return PipelineConfig(safety=safety, subsets=subsets, shuffle_seed=seed, target_files=files, pipeline=pipeline)


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
    if not isinstance(name, str) or not _SUBSET_NAME.match(name):
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

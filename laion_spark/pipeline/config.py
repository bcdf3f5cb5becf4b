"""The pipeline configuration (``conf/pipeline.yaml``): the subsets' part (:mod:`laion_spark.subsets.params`) and the
``pipeline:`` section (:mod:`.spec`).

Loaded into frozen dataclasses and validated strictly: an unknown key, a value of the wrong type or a duplicate
subset name is a :class:`~laion_spark.config_file.PipelineConfigError` naming the key
(``subsets[2].threshold: expected a number, got 'high'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config_file import PipelineConfigError, mapping, read_yaml
from ..subsets.params import SUBSET_KEYS, SubsetsConfig, default_config_path, parse_subsets_config
from .spec import PipelineSpec, parse_pipeline_spec


@dataclass(frozen=True)
class PipelineConfig(SubsetsConfig):
    """The whole ``pipeline.yaml``: the subsets' part, and the ``pipeline:`` section (``None`` when it has none)."""

    pipeline: PipelineSpec | None = None


def load_pipeline_config(path: str | Path | None = None) -> PipelineConfig:
    """Read and validate the YAML file at ``path`` (default: the packaged ``pipeline.yaml``).

    Raises :class:`PipelineConfigError` naming the file and the key (or the YAML line) that is wrong.
    """
    source = Path(path) if path is not None else default_config_path()
    if not source.is_file():
        raise PipelineConfigError(f"pipeline config not found: {source}")
    data = read_yaml(source)
    try:
        return parse_pipeline_config(data)
    except PipelineConfigError as err:
        raise PipelineConfigError(f"{source}: {err}") from None


def parse_pipeline_config(data: object) -> PipelineConfig:
    """Validate an already-parsed mapping and build the :class:`PipelineConfig`."""
    top = mapping(data, "config", required={"subsets"}, optional={*SUBSET_KEYS, "pipeline"})
    subsets = parse_subsets_config(top)
    pipeline = parse_pipeline_spec(top["pipeline"]) if top.get("pipeline") is not None else None
    sample = pipeline.stages.get("umap_sample") if pipeline is not None else None
    names = {spec.name for spec in subsets.subsets}
    if sample is not None and sample["subset"].removeprefix("subset_") not in names:
        raise PipelineConfigError(
            f"pipeline.stages.umap_sample.subset: {sample['subset']!r} is not a configured subset "
            f"({', '.join(sorted(names))})"
        )
    return PipelineConfig(**vars(subsets), pipeline=pipeline)

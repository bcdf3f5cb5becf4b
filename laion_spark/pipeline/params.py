"""The pipeline's stages, in the order it runs them, and each one's declaration (nothing heavy imported)."""

from __future__ import annotations

from dataclasses import dataclass

from ..aesthetic.params import AestheticEmbeddings, ScoreDistribution, ScoreEmbeddings
from ..clip.params import ScoreImages
from ..ingest.params import JoinTags
from ..kv.params import BuildKV
from ..report.params import Report
from ..stage import Stage
from ..subsets.params import BuildSubsets
from ..umap.params import SampleForUmap, Umap


@dataclass(frozen=True)
class PipelineStage:
    """A stage of the pipeline: the command it runs (its declaration) and, for a stage that runs the command
    once per entry of a list in its section, that list's key."""

    stage: type[Stage]
    many: str | None = None

    @property
    def command(self) -> str:
        """The ``laion-spark`` command the stage runs."""
        return self.stage.command

    @property
    def resources(self) -> str:
        """What it needs: ``cpu`` or ``gpu``."""
        return self.stage.resources


#: The stages, in the order the pipeline runs them: each one reads only what the ones before it wrote
#: (``join`` takes its aesthetic tags from ``score``, so scoring comes first).
PIPELINE_STAGES: dict[str, PipelineStage] = {
    "score": PipelineStage(ScoreEmbeddings),
    "images": PipelineStage(ScoreImages),
    "join": PipelineStage(JoinTags),
    "subsets": PipelineStage(BuildSubsets),
    "stats": PipelineStage(ScoreDistribution),
    "aesthetic_embeddings": PipelineStage(AestheticEmbeddings),
    "kv": PipelineStage(BuildKV, many="files"),
    "umap_sample": PipelineStage(SampleForUmap),
    "umap": PipelineStage(Umap),
    "report": PipelineStage(Report),
}
STAGE_ORDER = tuple(PIPELINE_STAGES)

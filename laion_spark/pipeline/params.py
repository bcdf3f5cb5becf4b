"""Pipeline parameters shared by the CLI, the config and the runner (nothing heavy imported)."""

from __future__ import annotations

#: The stages, in the order the pipeline runs them: each one reads only what the ones before it wrote
#: (``join`` takes its aesthetic tags from ``score``, so scoring comes first).
STAGE_ORDER = (
    "score",
    "images",
    "join",
    "subsets",
    "stats",
    "aesthetic_embeddings",
    "kv",
    "umap_sample",
    "umap",
    "report",
)
#: The lake table that records every completed stage (its fingerprint and its outputs).
STAGES_TABLE = "pipeline_stages"

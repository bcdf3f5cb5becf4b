"""A small sample, pipeline roots over it, and one uninterrupted reference run on Sail (Delta)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laion_spark.pipeline import run_pipeline
from laion_spark.pipeline.config import load_pipeline_config
from laion_spark.pipeline.demo import demo_config
from laion_spark.sample import generate_sample

ROWS = 300


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Path:
    """A small sample the pipeline runs read (never write)."""
    folder = tmp_path_factory.mktemp("pipeline_sample") / "sample"
    generate_sample(folder, ROWS, seed=5, shards=2)
    return folder


def rooted(tmp: Path, sample: Path) -> Path:
    """A pipeline root whose ``sample/`` is the shared sample; returns the config written there."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "sample").symlink_to(sample)
    head = sample / json.loads((sample / "sample.json").read_text())["head"]["path"]
    return demo_config(tmp, str(head))


@pytest.fixture(scope="session")
def reference_run(sail, sample, tmp_path_factory) -> Path:
    """An uninterrupted run on Sail; returns its root."""
    root = tmp_path_factory.mktemp("reference")
    run_pipeline(sail, load_pipeline_config(rooted(root, sample)), echo=lambda line: None)
    return root

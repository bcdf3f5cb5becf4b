"""A small sample, pipeline roots over it, one uninterrupted reference run on Sail and the same run on classic Spark.

The sample is the generator's, with two bad embedding rows planted (one NaN, one all zero: quarantined by
``score``), and the test config stretches what the packaged one leaves untouched at this size: one shard per
``score`` commit, KV files built in several key ranges, a subset limited to one collection with an extra
column, a UMAP sample smaller than its subset (so the seeded pick matters), fitted on part of its rows (so the
rest is transformed in Spark tasks that load the fitted models from the lake).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from laion_spark.pipeline import run_pipeline
from laion_spark.pipeline.config import load_pipeline_config
from laion_spark.pipeline.demo import demo_config
from laion_spark.sample import generate_sample

ROWS = 300
#: The classic run's root folder name: a space, a '#' and a non-ASCII letter, as users' paths have them.
ODD_ROOT = "my lake #1 é"
#: The planted bad embedding rows: (collection, shard file, row) -> what the row holds.
BAD_EMBEDDINGS = {("laion2B-en", "img_emb_0000.npy", 3): np.nan, ("laion2B-en", "img_emb_0001.npy", 5): 0.0}


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Path:
    """A small sample the pipeline runs read (never write)."""
    folder = tmp_path_factory.mktemp("pipeline_sample") / "sample"
    generate_sample(folder, ROWS, seed=5, shards=2)
    for (collection, name, row), value in BAD_EMBEDDINGS.items():
        path = folder / "embeddings" / collection / "img_emb" / name
        embeddings = np.load(path)
        embeddings[row] = value
        np.save(path, embeddings)
    return folder


def rooted(tmp: Path, sample: Path) -> Path:
    """A pipeline root whose ``sample/`` is the shared sample; returns the config written there."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "sample").symlink_to(sample)
    head = sample / json.loads((sample / "sample.json").read_text())["head"]["path"]
    path = demo_config(tmp, str(head))
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["subsets"].append(
        {"name": "en_5plus", "threshold": 5.0, "collections": ["laion2B-en"], "extra_columns": ["LANGUAGE"]}
    )
    stages = config["pipeline"]["stages"]
    stages["score"]["shards_per_commit"] = 1
    for file in stages["kv"]["files"]:
        file["max_rows_per_range"] = 200
    stages["umap_sample"]["rows"] = 80
    stages["umap"]["fit_rows"] = 70  # the other 10 rows go through the transform tasks and the model files
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def reference_run(sail, sample, tmp_path_factory) -> Path:
    """An uninterrupted run on Sail; returns its root."""
    root = tmp_path_factory.mktemp("reference")
    run_pipeline(sail, load_pipeline_config(rooted(root, sample)), echo=lambda line: None)
    return root


@pytest.fixture(scope="session")
def classic_run(sample, tmp_path_factory) -> Path:
    """The same pipeline on classic Spark (``--engine local``, ``local[2]``, Delta through delta-spark), in a fresh
    interpreter (PySpark cannot hold a classic and a Spark Connect session in one process), at a root named
    :data:`ODD_ROOT` (alone in its parent folder); returns its root."""
    root = tmp_path_factory.mktemp("classic") / ODD_ROOT
    run_on_classic_spark(rooted(root, sample))
    return root


def run_on_classic_spark(config: Path) -> None:
    """``laion-spark pipeline --config CONFIG --engine local`` on ``local[2]`` in a fresh interpreter; it must pass."""
    env = {**os.environ, "LAION_SPARK_MASTER": "local[2]"}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    proc = subprocess.run(
        [sys.executable, "-m", "laion_spark", "pipeline", "--config", str(config), "--engine", "local"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

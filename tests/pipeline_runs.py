"""A small sample, pipeline roots over it, one uninterrupted reference run on Sail and the same run on classic Spark.

The sample is the generator's, with two bad embedding rows planted (one NaN, one all zero: quarantined by
``score``), and the test config stretches what the packaged one leaves untouched at this size: one shard per
``score`` commit, KV files built in several key ranges, a subset limited to one collection with an extra
column, a UMAP sample smaller than its subset (so the seeded pick matters), fitted on part of its rows (so the
rest is transformed in Spark tasks that load the fitted models from the lake).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO
from installs import clean_env, deps_venv

from laion_spark.engine import delta_coordinate
from laion_spark.pipeline import run_pipeline
from laion_spark.pipeline.config import load_pipeline_config
from laion_spark.pipeline.demo import demo_config
from laion_spark.sample import generate_sample

ROWS = 300
#: The classic run's root folder name: a space, a '#' and a non-ASCII letter, as users' paths have them.
ODD_ROOT = "my lake #1 é"
#: The planted bad embedding rows: (collection, shard file, row) -> what the row holds.
BAD_EMBEDDINGS = {("laion2B-en", "img_emb_0000.npy", 3): np.nan, ("laion2B-en", "img_emb_0001.npy", 5): 0.0}
SPARK_HOME = Path(importlib.util.find_spec("pyspark").submodule_search_locations[0])
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
#: spark-submit's arguments for Delta (the README's ``$DELTA``): the pinned package and delta-spark's session settings.
DELTA = [
    "--packages", delta_coordinate(),
    "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
    "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
]  # fmt: skip
#: spark-submit's arguments for one machine with Delta: the local profile (as users pass it), then :data:`DELTA`.
DELTA_SUBMIT = ["--properties-file", str(REPO / "conf" / "local.conf"), *DELTA]


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
def classic_run(sample, dist, tmp_path_factory) -> Path:
    """The same pipeline on classic Spark as the README's one-machine ``spark-submit`` runs it: ``local[2]``, the
    one-machine profile, Delta from the pinned coordinate, ``jobs/pipeline.py`` (``--engine active``) with the package
    from ``make dist``'s zip and a Python that has the dependencies but not laion_spark; at a root named
    :data:`ODD_ROOT` (alone in its parent folder). Returns its root."""
    root = tmp_path_factory.mktemp("classic") / ODD_ROOT
    submit_pipeline(rooted(root, sample), dist[1], tmp_path_factory.mktemp("classic_submit"))
    return root


def submit_pipeline(config: Path, zipped: Path, work: Path) -> None:
    """``spark-submit --master local[2]`` of ``jobs/pipeline.py --config CONFIG`` with :data:`DELTA_SUBMIT` and
    ``zipped`` as ``--py-files``, from ``work`` (which also holds the executors' virtualenv); it must pass and run
    every stage through to the report."""
    python = deps_venv(work / "venv")  # sees the dependencies, not laion_spark: the zip must provide it
    env = clean_env(PYSPARK_PYTHON=str(python), PYSPARK_DRIVER_PYTHON=str(python), SPARK_HOME=str(SPARK_HOME))
    proc = subprocess.run(
        [
            str(SPARK_SUBMIT),
            "--master", "local[2]",
            *DELTA_SUBMIT,
            "--conf", "spark.ui.enabled=false",
            "--py-files", str(zipped),
            str(REPO / "jobs" / "pipeline.py"),
            "--config", str(config),
        ],
        capture_output=True, text=True, env=env, timeout=1800, cwd=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "report" in proc.stdout.split("pipeline over")[1], proc.stdout[-3000:]

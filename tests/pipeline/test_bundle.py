"""The Databricks Asset Bundle: every job and task is a valid ``databricks-bundles`` model and matches the pipeline."""

from __future__ import annotations

import zipfile

import pytest
import yaml
from conftest import REPO
from databricks.bundles.jobs import DataSecurityMode, Job

from laion_spark.engine import read_profile
from laion_spark.pipeline import PIPELINE_STAGES
from laion_spark.pipeline.config import load_pipeline_config
from laion_spark.pipeline.runner import plan
from laion_spark.pipeline.stages import StageContext


def bundle_jobs() -> dict[str, Job]:
    """Every job of ``databricks.yml``'s included resource files, loaded into the typed model."""
    bundle = yaml.safe_load((REPO / "databricks.yml").read_text())
    jobs = {}
    for pattern in bundle["include"]:
        for path in sorted(REPO.glob(pattern)):
            for key, job in yaml.safe_load(path.read_text())["resources"]["jobs"].items():
                jobs[key] = Job.from_dict(job)
    return jobs


@pytest.fixture(scope="module")
def job() -> Job:
    jobs = bundle_jobs()
    assert list(jobs) == ["laion_spark_pipeline"]
    return jobs["laion_spark_pipeline"]


def stage_of(task) -> str:
    params = task.spark_python_task.parameters
    return params[params.index("--only") + 1]


def test_every_task_runs_a_pipeline_stage_through_a_jobs_entry_point(job: Job) -> None:
    assert [stage_of(t) for t in job.tasks] == [t.task_key for t in job.tasks]
    assert set(t.task_key for t in job.tasks) == set(PIPELINE_STAGES)
    for task in job.tasks:
        assert (REPO / "resources" / task.spark_python_task.python_file).resolve().is_file()
        assert [lib.whl for lib in task.libraries] == ["../dist/*.whl"]


def test_gpu_stages_run_on_the_dedicated_gpu_cluster_and_the_rest_on_standard_compute(job: Job) -> None:
    clusters = {c.job_cluster_key: c.new_cluster for c in job.job_clusters}
    assert clusters["gpu"].data_security_mode == DataSecurityMode.DATA_SECURITY_MODE_DEDICATED
    assert "gpu" in clusters["gpu"].spark_version
    assert clusters["cpu"].data_security_mode == DataSecurityMode.DATA_SECURITY_MODE_STANDARD
    for task in job.tasks:
        assert task.job_cluster_key == ("gpu" if PIPELINE_STAGES[task.task_key].resources == "gpu" else "cpu")


def test_job_clusters_carry_the_databricks_profile(job: Job) -> None:
    profile = read_profile("databricks")
    for cluster in job.job_clusters:
        assert cluster.new_cluster.spark_conf == profile


def test_each_task_depends_on_every_earlier_stage_whose_outputs_it_reads(job: Job) -> None:
    config = load_pipeline_config(REPO / "conf" / "pipeline.yaml")
    ctx = StageContext(None, config, print, resolve_heads=False)  # no head lookup: only paths are compared
    needs = {t.task_key: {d.task_key for d in t.depends_on or []} for t in job.tasks}

    def upstream(key: str) -> set[str]:
        return needs[key] | {u for d in needs[key] for u in upstream(d)}

    configured = [n for n in PIPELINE_STAGES if n in config.pipeline.stages]
    stages = {stage.name: stage for stage in plan(ctx, configured, check_inputs=False)}
    for i, name in enumerate(configured):
        reads = set(stages[name].inputs)
        producers = {earlier for earlier in configured[:i] if reads & set(stages[earlier].outputs)}
        assert producers <= upstream(name), (name, producers - upstream(name))


@pytest.mark.slow
@pytest.mark.dist
def test_the_jobs_entry_point_and_the_console_script_are_in_the_built_wheel(dist) -> None:
    wheel, _ = dist
    with zipfile.ZipFile(wheel) as built:
        names = built.namelist()
        entry_points = next(built.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "laion-spark = laion_spark.cli:run" in entry_points
    assert "laion_spark/cli/entrypoint.py" in names and "laion_spark/pipeline/runner.py" in names

"""The pipeline runner: one YAML, stages in order, validated up front, resumed per stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from crash import InjectedCrash
from deltalake import DeltaTable
from lake_checks import assert_same_run
from pipeline_runs import ROWS, rooted
from typer.testing import CliRunner

from laion_spark.cli import app
from laion_spark.config_file import PipelineConfigError
from laion_spark.pipeline import run_pipeline
from laion_spark.pipeline.config import load_pipeline_config, parse_pipeline_config


def versions(lake: Path) -> dict[str, int]:
    return {p.name: DeltaTable(str(p)).version() for p in sorted(lake.iterdir()) if (p / "_delta_log").is_dir()}


def test_the_pipeline_writes_every_configured_table_and_file(reference_run: Path) -> None:
    lake = reference_run / "lake"
    expected = {"aesthetic_tags", "joined", "score_distribution", "aesthetic_embeddings", "runs", "pipeline_stages"}
    assert expected | {f"subset_{n}" for n in ("laion_art", "laion_aesthetic", "aesthetics_6plus")} <= set(
        versions(lake)
    )
    assert (reference_run / "kv" / "aesthetic.kv").stat().st_size > 0
    assert (reference_run / "report" / "index.html").is_file()
    assert sorted(p.name for p in (reference_run / "aesthetic_embeddings").glob("rating*.npy"))


def test_a_rerun_skips_every_complete_stage_and_writes_no_table(sail, reference_run: Path) -> None:
    before = versions(reference_run / "lake")
    config = load_pipeline_config(reference_run / "pipeline.yaml")
    result = run_pipeline(sail, config, echo=lambda line: None)
    assert {s.status for s in result.stages} == {"skipped"}
    after = versions(reference_run / "lake")
    assert after == {**before, "pipeline_stages": before["pipeline_stages"]}


@pytest.mark.slow  # two whole pipeline runs from an empty root: 12-14 s on the 2-core VM
def test_a_changed_parameter_reruns_its_stage_and_the_stages_reading_its_outputs(sail, sample, tmp_path) -> None:
    config = load_pipeline_config(rooted(tmp_path, sample))
    run_pipeline(sail, config, echo=lambda line: None)
    stricter = replace(config, safety=replace(config.safety, punsafe_below=0.3))
    result = run_pipeline(sail, stricter, echo=lambda line: None)
    ran = [s.name for s in result.stages if s.status == "ran"]
    # kv reads aesthetic_tags and joined, which did not change; the UMAP stages read the subsets, which did
    assert ran == ["subsets", "umap_sample", "umap", "report"]


def test_from_and_only_choose_the_stages_and_force_reruns_complete_ones(sail, reference_run: Path) -> None:
    config = load_pipeline_config(reference_run / "pipeline.yaml")
    only = run_pipeline(sail, config, only=["stats"], echo=lambda line: None)
    assert [(s.name, s.status) for s in only.stages] == [("stats", "skipped")]
    forced = run_pipeline(sail, config, only=["stats"], force=True, echo=lambda line: None)
    assert [(s.name, s.status) for s in forced.stages] == [("stats", "ran")]
    later = run_pipeline(sail, config, from_stage="kv", force=True, echo=lambda line: None)
    assert [(s.name, s.status) for s in later.stages] == [
        ("kv", "ran"),
        ("umap_sample", "ran"),
        ("umap", "ran"),
        ("report", "ran"),
    ]


def test_an_unknown_stage_or_a_missing_input_is_refused_before_any_stage_runs(sail, sample, tmp_path) -> None:
    config = load_pipeline_config(rooted(tmp_path, sample))
    with pytest.raises(PipelineConfigError, match="--only umapp: not a configured stage"):
        run_pipeline(sail, config, only=["umapp"])
    moved = replace(config, pipeline=replace(config.pipeline, root=str(tmp_path / "elsewhere")))
    with pytest.raises(PipelineConfigError, match=r"pipeline.stages.score: input .*elsewhere/sample/embeddings"):
        run_pipeline(sail, moved)
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["stages"].update(scor={}), "pipeline.stages.scor: unknown key"),
        (lambda p: p["stages"]["kv"]["files"][1].pop("table"), r"pipeline.stages.kv.files\[1\].table: missing"),
        (lambda p: p["stages"].update(umap_sample={"subset": "nope", "rows": 5}), "umap_sample.subset: 'nope'"),
        (lambda p: p["stages"]["score"].update(shards_per_commit=0), "shards_per_commit: expected an integer >= 1"),
        (lambda p: p["collections"].update(laion5B={}), "pipeline.collections.laion5B: unknown key"),
        (lambda p: p.pop("head"), "pipeline.head: missing required key"),
    ],
)
def test_config_errors_name_the_key(edit, message: str) -> None:
    data = yaml.safe_load((REPO / "conf" / "pipeline.yaml").read_text())
    edit(data["pipeline"])
    with pytest.raises(PipelineConfigError, match=message):
        parse_pipeline_config(data)


def test_describe_lists_each_stage_with_its_inputs_and_outputs(sample, tmp_path) -> None:
    config = rooted(tmp_path, sample)
    got = CliRunner().invoke(app, ["pipeline", "--config", str(config), "--describe"])
    assert got.exit_code == 0, got.output
    assert "score  (score-embeddings, cpu)" in got.stdout
    assert f"reads  {tmp_path}/sample/embeddings/laion2B-en" in got.stdout
    assert f"writes {tmp_path}/kv/watermark_safety.kv" in got.stdout


def test_sql_sees_every_lake_table_by_its_name(cli_on_sail, reference_run: Path) -> None:
    query = "SELECT collection, count(*) AS n FROM joined GROUP BY collection ORDER BY collection"
    got = CliRunner().invoke(app, ["sql", query, "--lake", str(reference_run / "lake"), "--csv"])
    assert got.exit_code == 0, got.output
    assert got.stdout.splitlines() == [
        "collection,n",
        *(f"{c},{ROWS}" for c in sorted(("laion1B-nolang", "laion2B-en", "laion2B-multi"))),
    ]
    bad = CliRunner().invoke(app, ["sql", "SELECT nope FROM joined", "--lake", str(reference_run / "lake")])
    assert (
        bad.exit_code == 2 and bad.stderr.startswith("error: query:") and "tables: aesthetic_embeddings" in bad.stderr
    )


def test_crashed_in_the_middle_of_a_stage_the_rerun_redoes_no_completed_stage_and_ends_as_an_uninterrupted_run(
    sail, sample, reference_run: Path, tmp_path: Path
) -> None:
    """The in-process twin of the SIGKILL test below: the crash comes when join-tags has committed the first
    collection. Pins the per-stage resume: without the pipeline_stages check every stage would run again."""
    config = load_pipeline_config(rooted(tmp_path, sample))
    seen: list[str] = []

    def echo(line: str) -> None:
        seen.append(line)
        if line.startswith("join-tags [laion2B-en]"):
            raise InjectedCrash("after join-tags committed laion2B-en")

    with pytest.raises(InjectedCrash):
        run_pipeline(sail, config, echo=echo)
    assert any(line.startswith("-> join") for line in seen), seen
    rerun = run_pipeline(sail, config, echo=lambda line: None)
    statuses = {stage.name: stage.status for stage in rerun.stages}
    assert statuses["score"] == "skipped"
    assert all(statuses[s] == "ran" for s in ("join", "subsets", "stats", "kv", "report"))
    assert_same_run(tmp_path, reference_run)


@pytest.mark.slow
def test_killed_in_the_middle_of_a_stage_the_rerun_redoes_no_completed_stage_and_ends_as_an_uninterrupted_run(
    sample, reference_run: Path, tmp_path: Path
) -> None:
    """Pins the per-stage resume: without the pipeline_stages check every stage would run again."""
    config = rooted(tmp_path, sample)
    args = [sys.executable, "-m", "laion_spark", "pipeline", "--config", str(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    for line in proc.stdout:  # kill after join-tags committed the first collection, before the last
        seen.append(line)
        if line.startswith("join-tags [laion2B-en]"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert any(line.startswith("-> join") for line in seen), "".join(seen)
    rerun = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    statuses = dict(line.split()[:2] for line in rerun.stdout.split("pipeline over")[1].splitlines()[1:])
    assert statuses["score"] == "skipped"
    assert all(statuses[s] == "ran" for s in ("join", "subsets", "stats", "kv", "report"))
    assert_same_run(tmp_path, reference_run)

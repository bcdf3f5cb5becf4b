"""Kill and resume, and idempotent reruns, for every command that writes.

For each stage: an uninterrupted trial is the reference. Then (1) running it once more leaves the same
tables and files (idempotence); (2) a trial crashed after any of its commits (a failure injected in this
process, :mod:`crash`) and rerun ends with exactly the reference's tables (row counts and checksums of all
columns) and files, with no scratch file left behind; (3) the same for a real process death: a trial
SIGKILLed at seeded points (before the first commit, between two commits, during the last; the slow tier).

Guards these tests pin (each was seen failing with its guard removed): score-embeddings' exactly-once
commits (its shard-level resume, and its ``replaceWhere shard IN ...`` commits: with both removed, a rerun
after a kill doubles the shards committed before it; either one alone suffices); join-tags' partition
replacement (without it the rerun appends the collection again); the KV builder's orphaned-staging check
(``OWNER``: without it the rerun of a build killed while writing fragments refuses to start).
"""

from __future__ import annotations

import json
import random

import crash
import pytest
from faults import StageRun, complete, describe, prepare, run, scratch_left

SEED = 20_261_202


def _head(root):
    sample = root / "sample"
    return str(sample / json.loads((sample / "sample.json").read_text())["head"]["path"])


STAGES = [
    StageRun(
        "score-embeddings",
        lambda r: ["score-embeddings", "--embeddings", f"{r}/sample/embeddings/laion2B-multi", "--head", _head(r),
                   "--lake", f"{r}/lake", "--shards-per-commit", "1"],
        tables=("aesthetic_tags",),
        fresh=True,
    ),
    StageRun(
        "join-tags",
        lambda r: ["join-tags", "--metadata", f"{r}/sample/metadata/laion2B-multi", "--collection", "laion2B-multi",
                   "--lake", f"{r}/lake", "--aesthetic-tags", f"{r}/lake/aesthetic_tags",
                   "--watermark-tags", f"{r}/sample/tags/laion2B-multi/watermark",
                   "--safety-tags", f"{r}/sample/tags/laion2B-multi/safety"],
        tables=("joined",),
    ),
    StageRun(
        "subsets",
        lambda r: ["subsets", "--lake", f"{r}/lake"],
        tables=("subset_laion_art", "subset_laion_aesthetic", "subset_aesthetics_6plus", "subset_aesthetics_6_5plus"),
        fresh=True,
    ),
    StageRun("stats", lambda r: ["stats", "--lake", f"{r}/lake"], tables=("score_distribution",), fresh=True),
    StageRun(
        "aesthetic-embeddings",
        lambda r: ["aesthetic-embeddings", "--embeddings", f"{r}/sample/embeddings/laion2B-en",
                   "--embeddings", f"{r}/sample/embeddings/laion1B-nolang", "--head", _head(r), "--lake", f"{r}/lake"],
        tables=("aesthetic_embeddings",),
    ),
    StageRun(
        "export-aesthetic-embeddings",
        lambda r: ["export-aesthetic-embeddings", "--lake", f"{r}/lake", "--out", f"{r}/ratings"],
        files=("ratings",),
    ),
    StageRun(
        "build-kv",
        lambda r: ["build-kv", "--table", f"{r}/lake/joined", "--value-columns", "pwatermark,punsafe",
                   "--value-format", "ee", "--out", f"{r}/kv/watermark_safety.kv", "--lake", f"{r}/lake",
                   "--max-rows-per-range", "200"],
        files=("kv/watermark_safety.kv",),
        inside="kv/watermark_safety.kv.staging/range-*",
    ),
    StageRun(
        "score-images",
        lambda r: ["score-images", "--shards", f"{r}/sample/webdataset/*.tar", "--model", "laion-spark-tiny",
                   "--head", _head(r), "--lake", f"{r}/lake", "--tars-per-commit", "1",
                   "--write-embeddings", f"{r}/image_embeddings"],
        tables=("image_aesthetic_tags", "image_errors", "image_tars"),
        files=("image_embeddings",),
        fresh=True,
    ),
    StageRun(
        "embed-text",
        lambda r: ["embed-text", "--table", f"{r}/lake/subset_laion_aesthetic", "--column", "TEXT",
                   "--model", "laion-spark-tiny", "--out", f"{r}/lake/text_embeddings"],
        tables=("text_embeddings",),
        fresh=True,
    ),
    StageRun(
        "sample-for-umap",
        lambda r: ["sample-for-umap", "--lake", f"{r}/lake", "--subset", "aesthetics_6plus", "--rows", "80",
                   "--seed", "3"],
        tables=("umap_sample",),
    ),
    StageRun(
        "umap",
        lambda r: ["umap", "--lake", f"{r}/lake", "--model", "laion-spark-tiny", "--epochs", "30",
                   "--renders", f"{r}/umap"],
        tables=("umap",),
        files=("umap/umap_nn10.png", "umap/umap_nn30.png", "umap/umap_nn60.png"),  # umap.json names the run
    ),
    StageRun(
        "report",
        lambda r: ["report", "--lake", f"{r}/lake", "--out", f"{r}/report2"],
        files=("report2/funnel.png",),
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def in_process(reference_run, tmp_path_factory, cli_on_sail_module):
    """The uninterrupted trial of every stage, run in this process, and its root."""
    done = {}
    for stage in STAGES:
        root = prepare(tmp_path_factory.mktemp(f"in-process-{stage.name}") / "root", reference_run, stage)
        done[stage.name] = (crash.complete(stage, root, cli_on_sail_module), root)
    return done


@pytest.fixture(scope="module")
def references(reference_run, tmp_path_factory):
    """The uninterrupted trial of every stage in a fresh process, and its root."""
    done = {}
    for stage in STAGES:
        root = prepare(tmp_path_factory.mktemp(f"ref-{stage.name}") / "root", reference_run, stage)
        done[stage.name] = (complete(stage, root), root)
    return done


def kill_points(commits: int, rng: random.Random) -> list[int]:
    """Before the first commit, between two commits (seeded), during the last."""
    between = [rng.randint(1, commits - 2)] if commits > 2 else []
    return sorted({0, *between, max(commits - 1, 0)})


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_running_a_stage_twice_leaves_what_one_run_left(stage: StageRun, in_process, cli_on_sail_module) -> None:
    first, root = in_process[stage.name]
    again = crash.complete(stage, root, cli_on_sail_module)
    assert (again.tables, again.files) == (first.tables, first.files)


#: Stages whose crash loop (one crash and rerun per commit) is over the fast tier's 10 s on a slow day (11-12 s on the
#: 2-core VM, 2026-12-07): score-images rescoring a tar a commit, subsets rewriting a table a commit.
LONG_CRASH_LOOPS = ("score-images", "subsets")


@pytest.mark.parametrize(
    "stage",
    [pytest.param(s, id=s.name, marks=[pytest.mark.slow] if s.name in LONG_CRASH_LOOPS else []) for s in STAGES],
)
def test_crashed_after_any_commit_the_rerun_ends_as_an_uninterrupted_run(
    stage: StageRun, in_process, reference_run, tmp_path, cli_on_sail_module
) -> None:
    reference, _ = in_process[stage.name]
    assert reference.commits > 0, "the stage made no lake commit"
    for point in range(reference.commits):
        root = prepare(tmp_path / f"crash-after-{point}", reference_run, stage)
        crash.crash(stage, root, point, cli_on_sail_module)
        crash.complete(stage, root, cli_on_sail_module)
        got = describe(stage, root)
        assert (got.tables, got.files) == (reference.tables, reference.files), f"crashed after commit {point}"
        assert scratch_left(root) == [], scratch_left(root)


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_killed_at_any_commit_the_rerun_ends_as_an_uninterrupted_run(
    stage: StageRun, references, reference_run, tmp_path
) -> None:
    reference, _ = references[stage.name]
    rng = random.Random(f"{SEED}-{stage.name}")
    points = kill_points(reference.commits, rng)
    for point in points:
        root = prepare(tmp_path / f"kill-at-{point}", reference_run, stage)
        run(stage, root, kill_at=point, kill_after_s=rng.uniform(0.2, 0.9) * reference.first_commit_s)
        rerun = complete(stage, root)
        got = describe(stage, root)
        assert (got.tables, got.files) == (reference.tables, reference.files), f"killed at commit {point}"
        assert rerun.commits >= 0 and scratch_left(root) == [], scratch_left(root)

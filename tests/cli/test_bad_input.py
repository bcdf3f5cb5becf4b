"""The error contract, table-driven: every command, fed bad input, exits 2 with one line naming the culprit.

Each case runs the real command line (``laion-spark``'s app, in this process, on the shared Sail session:
only the engine's start is skipped, its options are checked as in a real run) against a small lake built
once for the module, and checks: exit status 2, stderr exactly one line ``error: ...`` that contains the
culprit (a path, column, key or option), no traceback anywhere in the output, and every file of the lake
unchanged (same Delta versions, same rows: the lake's bytes are compared). A few cases, one per kind of
failure, run again in a fresh interpreter (the slow tier): the real process prints the same one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO
from typer.testing import CliRunner

from laion_spark.aesthetic import score_embeddings
from laion_spark.aesthetic.distribution import build_score_distribution
from laion_spark.aesthetic.params import ScoreDistribution, ScoreEmbeddings
from laion_spark.cli import app
from laion_spark.ingest import join_tags
from laion_spark.ingest.params import JoinTags
from laion_spark.lake.layout import COLLECTIONS
from laion_spark.sample import generate_sample
from laion_spark.subsets import build_subsets
from laion_spark.subsets.params import BuildSubsets

COLLECTION = COLLECTIONS[0]


@dataclass(frozen=True)
class World:
    """The lake and the good and bad inputs the cases point at."""

    root: Path
    lake: Path
    sample: Path

    def __truediv__(self, name: str) -> Path:
        return self.root / name


@pytest.fixture(scope="module")
def world(sail, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("bad_input")
    sample, lake = root / "sample", root / "lake"
    generate_sample(sample, 200, seed=3, shards=2)
    head = sample / json.loads((sample / "sample.json").read_text())["head"]["path"]
    tags = sample / "tags" / COLLECTION
    score_embeddings(sail, ScoreEmbeddings(embeddings=sample / "embeddings" / COLLECTION, head=head, lake=lake))
    join_tags(
        sail,
        JoinTags(
            metadata=sample / "metadata" / COLLECTION,
            collection=COLLECTION,
            lake=lake,
            aesthetic_tags=lake / "aesthetic_tags",
            watermark_tags=tags / "watermark",
            safety_tags=tags / "safety",
        ),
    )
    build_subsets(sail, BuildSubsets(lake=lake))
    build_score_distribution(sail, ScoreDistribution(lake=lake))
    _bad_files(root, sample)
    return World(root, lake, sample)


def _bad_files(root: Path, sample: Path) -> None:
    """Every bad input of the table below, written once."""
    (root / "empty").mkdir()
    (root / "not_a_table").mkdir()
    (root / "not_a_table" / "notes.txt").write_text("no parquet here\n")
    (root / "corrupt").mkdir()
    first = sorted((sample / "metadata" / COLLECTION).glob("*.parquet"))[0]
    (root / "corrupt" / "part-0.parquet").write_bytes(first.read_bytes()[:200])
    typed = pq.read_table(first)
    typed = typed.set_column(typed.schema.get_field_index("TEXT"), "TEXT", pa.array(range(typed.num_rows)))
    (root / "wrong_type").mkdir()
    pq.write_table(typed, root / "wrong_type" / "part-0.parquet")
    (root / "string_hash").mkdir()
    pq.write_table(pa.table({"hash": ["a", "b"], "aesthetic": [1.0, 2.0]}), root / "string_hash" / "t.parquet")
    shards = root / "truncated_npy"
    shutil.copytree(sample / "embeddings" / COLLECTION, shards)
    npy = sorted((shards / "img_emb").glob("*.npy"))[0]
    npy.write_bytes(npy.read_bytes()[:-100])
    (root / "head.pth").write_bytes(b"not a torch file at all")
    np.arange(7, dtype=np.int64).view(np.uint8)[:51].tofile(root / "truncated.kv")
    (root / "not_kv.kv").write_bytes(bytes(range(200, 100, -1)) * 3)  # 300 bytes: 30 records out of order
    (root / "bad.conf").write_text("spark.sql.shuffle.partitions 4\njust_a_key\n")
    (root / "unknown_key.yaml").write_text("subsets: [{name: a, threshold: 5}]\nthreshhold: 7\n")
    (root / "wrong_type.yaml").write_text("subsets:\n  - name: a\n    threshold: high\n")
    (root / "wrong_stage.yaml").write_text("subsets: [{name: a, threshold: 5}]\n")
    elsewhere = yaml.safe_load((REPO / "conf" / "pipeline.yaml").read_text())
    elsewhere["pipeline"].update(root=str(root / "empty"), head=str(sample / "heads" / "synthetic-l14.pth"))
    (root / "missing_input.yaml").write_text(yaml.safe_dump(elsewhere, sort_keys=False))
    (root / "not_yaml.yaml").write_text("subsets: [unclosed\n  - : :\n")
    (root / "non_empty").mkdir()
    (root / "non_empty" / "keep.txt").write_text("mine")
    broken_lake = root / "broken_lake"
    (broken_lake / "joined").mkdir(parents=True)
    (broken_lake / "joined" / "readme.txt").write_text("a folder that is not a table")


@dataclass(frozen=True)
class Case:
    """A command line (``{lake}``, ``{root}``, ``{sample}`` filled in) and what its error line must name."""

    id: str
    argv: tuple[str, ...]
    culprit: str


META = "{sample}/metadata/laion2B-en"
EMB = "{sample}/embeddings/laion2B-en"
HEAD = "{sample}/heads/synthetic-l14.pth"
CASES = [
    Case(
        "join-missing-path",
        ("join-tags", "--metadata", "{root}/nowhere", "--collection", "c", "--lake", "{lake}"),
        "{root}/nowhere",
    ),
    Case(
        "join-empty-folder",
        ("join-tags", "--metadata", "{root}/empty", "--collection", "c", "--lake", "{lake}"),
        "no data files under {root}/empty",
    ),
    Case(
        "join-corrupt-parquet",
        ("join-tags", "--metadata", "{root}/corrupt", "--collection", "c", "--lake", "{lake}"),
        "{root}/corrupt/part-0.parquet",
    ),
    Case(
        "join-wrong-column-type",
        ("join-tags", "--metadata", "{root}/wrong_type", "--collection", "c", "--lake", "{lake}"),
        "column TEXT is bigint",
    ),
    Case(
        "join-bad-collection-name",
        ("join-tags", "--metadata", META, "--collection", "en/../x", "--lake", "{lake}"),
        "collection name 'en/../x'",
    ),
    Case(
        "join-tag-table-without-hash",
        (
            "join-tags",
            "--metadata",
            META,
            "--collection",
            "c",
            "--lake",
            "{lake}",
            "--watermark-tags",
            "{root}/wrong_type",
        ),
        "missing column(s) hash",
    ),
    Case(
        "join-unknown-table-format",
        ("join-tags", "--metadata", META, "--collection", "c", "--lake", "{lake}", "--table-format", "xml"),
        "unknown table format 'xml'",
    ),
    Case(
        "score-not-a-shard-folder",
        ("score-embeddings", "--embeddings", "{root}/empty", "--head", HEAD, "--lake", "{lake}"),
        "missing folder img_emb/",
    ),
    Case(
        "score-truncated-npy",
        (
            "score-embeddings",
            "--embeddings",
            "{root}/truncated_npy",
            "--head",
            "{sample}/heads/synthetic-l14.pth",
            "--lake",
            "{lake}",
        ),
        "img_emb_0000.npy: truncated",
    ),
    Case(
        "score-corrupt-head",
        ("score-embeddings", "--embeddings", EMB, "--head", "{root}/head.pth", "--lake", "{lake}"),
        "{root}/head.pth: not a readable torch state dict",
    ),
    Case(
        "score-unknown-head",
        ("score-embeddings", "--embeddings", EMB, "--head", "laion-v9", "--lake", "{lake}"),
        "head 'laion-v9' is neither a file nor a known head",
    ),
    Case(
        "score-zero-shards-per-commit",
        ("score-embeddings", "--embeddings", EMB, "--head", HEAD, "--lake", "{lake}", "--shards-per-commit", "0"),
        "--shards-per-commit",
    ),
    Case("subsets-lake-with-no-tables", ("subsets", "--lake", "{root}/empty"), "no delta table at {root}/empty/joined"),
    Case(
        "subsets-folder-not-a-table",
        ("subsets", "--lake", "{root}/broken_lake"),
        "{root}/broken_lake/joined is not a delta table",
    ),
    Case(
        "subsets-unknown-yaml-key",
        ("subsets", "--lake", "{lake}", "--config", "{root}/unknown_key.yaml"),
        "threshhold: unknown key",
    ),
    Case(
        "subsets-wrong-yaml-type",
        ("subsets", "--lake", "{lake}", "--config", "{root}/wrong_type.yaml"),
        "subsets[0].threshold: expected a number, got 'high'",
    ),
    Case(
        "subsets-not-yaml",
        ("subsets", "--lake", "{lake}", "--config", "{root}/not_yaml.yaml"),
        "{root}/not_yaml.yaml: not valid YAML at line",
    ),
    Case(
        "subsets-missing-config",
        ("subsets", "--lake", "{lake}", "--config", "{root}/nope.yaml"),
        "pipeline config not found: {root}/nope.yaml",
    ),
    Case(
        "stats-lake-with-no-tables",
        ("stats", "--lake", "{root}/empty"),
        "no delta table at {root}/empty/aesthetic_tags",
    ),
    Case(
        "aesthetic-embeddings-truncated-npy",
        (
            "aesthetic-embeddings",
            "--embeddings",
            "{root}/truncated_npy",
            "--head",
            "{sample}/heads/synthetic-l14.pth",
            "--lake",
            "{lake}",
        ),
        "img_emb_0000.npy: truncated",
    ),
    Case(
        "export-no-embeddings-table",
        ("export-aesthetic-embeddings", "--lake", "{lake}", "--out", "{root}/ratings"),
        "no delta table at {lake}/aesthetic_embeddings",
    ),
    Case("report-negative-samples", ("report", "--lake", "{lake}", "--samples", "-1"), "--samples"),
    Case(
        "report-unknown-yaml-key",
        ("report", "--lake", "{lake}", "--config", "{root}/unknown_key.yaml"),
        "threshhold: unknown key",
    ),
    Case(
        "kv-build-missing-table",
        (
            "build-kv",
            "--table",
            "{root}/nowhere",
            "--value-columns",
            "aesthetic",
            "--out",
            "{root}/a.kv",
            "--lake",
            "{lake}",
        ),
        "no table at {root}/nowhere",
    ),
    Case(
        "kv-build-unknown-column",
        ("build-kv", "--table", "{lake}/aesthetic_tags", "--value-columns", "beauty", "--out", "{root}/a.kv"),
        "no column 'beauty'",
    ),
    Case(
        "kv-build-string-key",
        ("build-kv", "--table", "{root}/string_hash", "--value-columns", "aesthetic", "--out", "{root}/a.kv"),
        "column 'hash' is string",
    ),
    Case(
        "kv-build-corrupt-parquet",
        ("build-kv", "--table", "{root}/corrupt", "--value-columns", "aesthetic", "--out", "{root}/a.kv"),
        "data file part-0.parquet is not readable parquet",
    ),
    Case(
        "kv-build-bad-value-format",
        (
            "build-kv",
            "--table",
            "{lake}/aesthetic_tags",
            "--value-columns",
            "aesthetic",
            "--value-format",
            "x",
            "--out",
            "{root}/a.kv",
        ),
        "value format 'x'",
    ),
    Case(
        "kv-build-bad-where",
        (
            "build-kv",
            "--table",
            "{lake}/aesthetic_tags",
            "--value-columns",
            "aesthetic",
            "--where",
            "no_such_column > 1",
            "--out",
            "{root}/a.kv",
        ),
        "--where 'no_such_column > 1'",
    ),
    Case(
        "kv-build-zero-rows-per-range",
        (
            "build-kv",
            "--table",
            "{lake}/aesthetic_tags",
            "--value-columns",
            "aesthetic",
            "--max-rows-per-range",
            "0",
            "--out",
            "{root}/a.kv",
        ),
        "--max-rows-per-range",
    ),
    Case(
        "kv-build-unknown-duplicate-rule",
        (
            "build-kv",
            "--table",
            "{lake}/aesthetic_tags",
            "--value-columns",
            "aesthetic",
            "--on-duplicate",
            "newest",
            "--out",
            "{root}/a.kv",
        ),
        "--on-duplicate: expected one of first, max, error, got 'newest'",
    ),
    Case(
        "kv-get-truncated-kv",
        ("kv-get", "{root}/truncated.kv", "--hash", "1"),
        "{root}/truncated.kv: size 51 bytes is not a multiple",
    ),
    Case("kv-verify-not-a-kv", ("kv-verify", "{root}/not_kv.kv"), "{root}/not_kv.kv: keys not sorted"),
    Case("kv-verify-missing-file", ("kv-verify", "{root}/nowhere.kv"), "no KV file at {root}/nowhere.kv"),
    Case("doctor-unknown-engine", ("doctor", "--engine", "spark"), "unknown engine 'spark'"),
    Case(
        "doctor-bad-profile-line", ("doctor", "--profile", "{root}/bad.conf"), "{root}/bad.conf:2: expected 'key value'"
    ),
    Case("doctor-missing-profile", ("doctor", "--profile", "nosuchprofile"), "nosuchprofile.conf"),
    Case(
        "doctor-conf-without-value",
        ("doctor", "--conf", "spark.sql.shuffle.partitions"),
        "--conf 'spark.sql.shuffle.partitions'",
    ),
    Case("doctor-remote-without-url", ("doctor", "--engine", "remote"), "needs a Spark Connect URL"),
    Case("sample-zero-rows", ("sample", "--out", "{root}/s", "--rows", "0"), "--rows"),
    Case(
        "sample-non-empty-folder",
        ("sample", "--out", "{root}/non_empty", "--rows", "100"),
        "--out {root}/non_empty: is not empty",
    ),
    Case(
        "sample-corrupt-head",
        ("sample", "--out", "{root}/s", "--rows", "100", "--head", "{root}/head.pth"),
        "{root}/head.pth: not a readable torch state dict",
    ),
    Case("demo-too-few-rows", ("demo", "--out", "{root}/d", "--rows", "5"), "--rows"),
    Case(
        "images-glob-matches-nothing",
        (
            "score-images",
            "--shards",
            "{root}/empty/*.tar",
            "--model",
            "laion-spark-tiny",
            "--head",
            HEAD,
            "--lake",
            "{lake}",
        ),
        "matched no file",
    ),
    Case(
        "images-model-without-weights",
        (
            "score-images",
            "--shards",
            "{sample}/webdataset/*.tar",
            "--model",
            "ViT-L-14",
            "--head",
            HEAD,
            "--lake",
            "{lake}",
        ),
        "give the weights as ViT-L-14:TAG",
    ),
    Case(
        "embed-text-missing-table",
        (
            "embed-text",
            "--table",
            "{root}/nowhere",
            "--column",
            "TEXT",
            "--model",
            "laion-spark-tiny",
            "--out",
            "{root}/emb",
        ),
        "{root}/nowhere",
    ),
    Case(
        "embed-text-unknown-column",
        (
            "embed-text",
            "--table",
            "{lake}/joined",
            "--column",
            "CAPTION",
            "--model",
            "laion-spark-tiny",
            "--out",
            "{root}/emb",
        ),
        "CAPTION",
    ),
    Case(
        "pipeline-config-without-pipeline",
        ("pipeline", "--config", "{root}/wrong_stage.yaml"),
        "pipeline: missing section",
    ),
    Case(
        "pipeline-unknown-stage",
        ("pipeline", "--only", "scoring", "--root", "{root}"),
        "--only scoring: not a configured stage",
    ),
    Case(
        "pipeline-missing-input",
        ("pipeline", "--config", "{root}/missing_input.yaml"),
        "{root}/empty/sample/embeddings/laion2B-en does not exist",
    ),
    Case(
        "umap-sample-unknown-subset",
        ("sample-for-umap", "--lake", "{lake}", "--subset", "nope", "--rows", "30", "--seed", "1"),
        "subset_nope",
    ),
    Case(
        "umap-sample-zero-rows",
        ("sample-for-umap", "--lake", "{lake}", "--subset", "aesthetics_6plus", "--rows", "0", "--seed", "1"),
        "--rows",
    ),
    Case(
        "umap-bad-neighbors",
        ("umap", "--lake", "{lake}", "--model", "laion-spark-tiny", "--neighbors", "10,ten"),
        "--neighbors '10,ten'",
    ),
    Case("umap-zero-epochs", ("umap", "--lake", "{lake}", "--model", "laion-spark-tiny", "--epochs", "0"), "--epochs"),
    Case(
        "umap-lake-without-sample",
        ("umap", "--lake", "{lake}", "--model", "laion-spark-tiny"),
        "no delta table at {lake}/umap_sample",
    ),
    Case("sql-bad-query", ("sql", "SELECT nope FROM joined", "--lake", "{lake}"), "query:"),
    Case(
        "sql-lake-with-no-tables",
        ("sql", "SELECT 1", "--lake", "{root}/empty"),
        "--lake {root}/empty: holds no delta table",
    ),
]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and a digest of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_table_covers_every_command_and_at_least_25_cases() -> None:
    from typer.main import get_command

    from laion_spark.cli import app

    commands = set(get_command(app).commands)
    assert commands <= {case.argv[0] for case in CASES}, commands - {case.argv[0] for case in CASES}
    assert len(CASES) >= 25


def _argv(world: World, case: Case) -> tuple[list[str], dict[str, str]]:
    fill = {"lake": str(world.lake), "root": str(world.root), "sample": str(world.sample)}
    return [arg.format(**fill) for arg in case.argv], fill


def _check(world: World, case: Case, fill: dict[str, str], code: int, stdout: str, stderr: str) -> None:
    output = stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert case.culprit.format(**fill) in lines[0], lines[0]
    assert "Traceback" not in output


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_line_naming_the_culprit_and_leaves_the_lake_as_it_was(
    world: World, case: Case, cli_on_sail: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv, fill = _argv(world, case)
    before = snapshot(world.lake)
    monkeypatch.setenv("LAION_SPARK_OFFLINE", "1")
    monkeypatch.setenv("LAION_SPARK_CACHE", str(world / "cache"))
    monkeypatch.chdir(world.root)
    result = CliRunner().invoke(app, argv)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    _check(world, case, fill, result.exit_code, result.stdout, result.stderr)
    assert snapshot(world.lake) == before, "the lake changed"


#: One case per kind of failure, run in a fresh interpreter: a usage error, an engine option, a config file,
#: a file's contents read by the driver, a file the engine reads, a model, a query the engine analyses.
IN_A_FRESH_PROCESS = (
    "umap-bad-neighbors",
    "doctor-unknown-engine",
    "subsets-not-yaml",
    "score-truncated-npy",
    "join-corrupt-parquet",
    "images-model-without-weights",
    "sql-bad-query",
)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.id in IN_A_FRESH_PROCESS], ids=IN_A_FRESH_PROCESS)
def test_the_real_process_prints_the_one_line_and_no_traceback(world: World, case: Case) -> None:
    argv, fill = _argv(world, case)
    before = snapshot(world.lake)
    env = {**os.environ, "LAION_SPARK_OFFLINE": "1", "LAION_SPARK_CACHE": str(world / "cache")}
    env.pop("LAION_SPARK_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "laion_spark", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=world.root,
    )
    _check(world, case, fill, proc.returncode, proc.stdout, proc.stderr)
    assert snapshot(world.lake) == before, "the lake changed"

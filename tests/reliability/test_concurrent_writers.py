"""Two writers at once: no row lost or doubled, and a losing writer says which table another writer changed.

Measured on Sail 0.7.2 (DESIGN.md section 10): concurrent appends retry and lose nothing; two
``replaceWhere`` commits of the same rows make one fail ("Failed to commit transaction"). delta-spark
raises its own ``ConcurrentAppendException``, ``ConcurrentDeleteReadException``, ``ProtocolChangedException``
... instead. Each test runs on both engines (``--engine local``: classic Spark with delta-spark, on the
Sail run's lake, so the tables are one lake written by two engines): it starts two processes together
(several rounds on Sail, fewer on classic Spark, whose processes start a JVM each, so that different
interleavings happen), then checks the tables, reruns whichever writer lost, and checks again.

Guards these tests pin (each was seen failing with its guard removed): score-embeddings commits a
``replaceWhere`` of exactly the shards it wrote, after creating the table empty (as plain appends, two
runs over overlapping shards both append them: doubled rows); the engine's commit-conflict error becomes
a :class:`~laion_spark.lake.WriteConflictError` naming the table, on either engine; subsets read one Delta snapshot of
``joined`` (without it, a join-tags committing between two subsets' writes mixes two versions: the last
test forces that interleaving, which two real processes produce only sometimes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import classic_env
from deltalake import DeltaTable
from faults import StageRun, prepare
from lake_checks import digest, read_any

from laion_spark.pipeline.config import load_pipeline_config
from laion_spark.subsets.params import BuildSubsets

pytestmark = pytest.mark.slow
CONFLICT = "another writer changed the table"


@dataclass(frozen=True)
class Engine:
    """The engine options every command of a test gets, and how many rounds the test runs there."""

    args: tuple[str, ...]
    rounds: int
    #: join-tags runs rewriting joined while subsets runs.
    rewrites: int


@pytest.fixture(
    params=[
        pytest.param(Engine((), 3, 4), id="sail"),
        pytest.param(Engine(("--engine", "local"), 1, 2), id="delta-spark", marks=pytest.mark.classic),
    ]
)
def engine(request: pytest.FixtureRequest) -> Engine:
    return request.param


def on(engine: Engine, command: list[str]) -> list[str]:
    return [*command, *engine.args]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "laion_spark", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=writer_env(),
    )


def writer_env() -> dict[str, str]:
    """Each writer a process of its own; a classic one on one core (two JVMs share the machine's two)."""
    return classic_env("local[1]", PYTHONUNBUFFERED="1")


def together(*commands: list[str], cwd: Path) -> list[tuple[list[str], int, str]]:
    """Run the commands at the same time; ``(command, exit status, stderr)`` of each."""
    procs = [(cmd, start(cmd, cwd)) for cmd in commands]
    done = []
    for cmd, proc in procs:
        _, err = proc.communicate(timeout=600)
        done.append((cmd, proc.returncode, err))
    return done


def settle(outcomes: list[tuple[list[str], int, str]], table: str, cwd: Path) -> int:
    """Every writer succeeded or lost with the conflict error naming ``table``; rerun the losers. Returns losses."""
    losers = 0
    for cmd, code, err in outcomes:
        if code == 0:
            continue
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1 and len(lines) == 1 and CONFLICT in lines[0] and table in lines[0], err[-3000:]
        losers += 1
        rerun = subprocess.run(
            [sys.executable, "-m", "laion_spark", *cmd], capture_output=True, text=True, cwd=cwd, env=writer_env()
        )
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    return losers


def head_of(root: Path) -> str:
    sample = root / "sample"
    return str(sample / json.loads((sample / "sample.json").read_text())["head"]["path"])


def join_command(root: Path, collection: str, *, safety: bool = True) -> list[str]:
    tags = root / "sample" / "tags" / collection
    return [
        "join-tags", "--metadata", str(root / "sample" / "metadata" / collection), "--collection", collection,
        "--lake", str(root / "lake"), "--aesthetic-tags", str(root / "lake" / "aesthetic_tags"),
        "--watermark-tags", str(tags / "watermark"), *(["--safety-tags", str(tags / "safety")] if safety else []),
    ]  # fmt: skip


def test_two_join_tags_of_one_collection_leave_its_rows_once(reference_run, tmp_path, engine) -> None:
    expected = digest(read_any(reference_run / "lake" / "joined"))
    for round_ in range(engine.rounds):
        root = prepare(tmp_path / f"round-{round_}", reference_run, StageRun("join", lambda r: []))
        command = on(engine, join_command(root, "laion2B-multi"))
        settle(together(command, command, cwd=root), "joined", root)
        assert digest(read_any(root / "lake" / "joined")) == expected


def test_two_score_embeddings_of_overlapping_shards_score_each_shard_once(reference_run, tmp_path, engine) -> None:
    for round_ in range(engine.rounds):
        root = prepare(
            tmp_path / f"round-{round_}", reference_run, StageRun("s", lambda r: [], ("aesthetic_tags",), fresh=True)
        )
        source = root / "sample" / "embeddings" / "laion2B-multi"
        only_second = root / "second" / "laion2B-multi"
        for sub, pattern in (("img_emb", "img_emb_0001.npy"), ("metadata", "metadata_0001.parquet")):
            (only_second / sub).mkdir(parents=True)
            shutil.copy(source / sub / pattern, only_second / sub / pattern)
        base = ["--head", head_of(root), "--lake", str(root / "lake"), "--shards-per-commit", "1"]
        all_shards = on(engine, ["score-embeddings", "--embeddings", str(source), *base])
        overlap = on(engine, ["score-embeddings", "--embeddings", str(only_second), *base])
        settle(together(all_shards, overlap, cwd=root), "aesthetic_tags", root)
        tags = read_any(root / "lake" / "aesthetic_tags").to_pandas()
        rows = {int(p.stem[-4:]): pq.read_metadata(p).num_rows for p in (source / "metadata").glob("*.parquet")}
        assert tags.groupby("shard").size().to_dict() == rows
        assert not tags.duplicated(["shard", "hash"]).any()


def _subset_hashes(joined: pa.Table, threshold: float, collections: tuple[str, ...] | None) -> set[int]:
    keep = pc.and_kleene(pc.less(joined["pwatermark"], 0.8), pc.less(joined["punsafe"], 0.5))
    keep = pc.and_kleene(keep, pc.greater(joined["aesthetic"], threshold))
    if collections:
        keep = pc.and_kleene(keep, pc.is_in(joined["collection"], pa.array(collections)))
    return set(joined.filter(pc.fill_null(keep, False))["hash"].to_pylist())


def test_subsets_while_join_tags_rewrites_joined_read_one_version_of_it(reference_run, tmp_path, engine) -> None:
    config = load_pipeline_config(reference_run / "pipeline.yaml")
    for round_ in range(engine.rounds):
        root = prepare(tmp_path / f"round-{round_}", reference_run, StageRun("j", lambda r: []))
        # join-tags rewrites laion2B-en again and again, with and without its safety tags (punsafe null: fewer
        # rows pass), while subsets runs: any two of its reads of joined may see different versions.
        rewrites = [on(engine, join_command(root, "laion2B-en", safety=i % 2 == 1)) for i in range(engine.rewrites)]
        script = "; ".join(f"{sys.executable} -m laion_spark {' '.join(map(str, cmd))} >/dev/null" for cmd in rewrites)
        writer = subprocess.Popen(["bash", "-c", script], cwd=root, env=writer_env())
        subsets = on(engine, ["subsets", "--lake", str(root / "lake")])
        outcome = subprocess.run(
            [sys.executable, "-m", "laion_spark", *subsets], capture_output=True, text=True, cwd=root, env=writer_env()
        )
        writer.wait(timeout=900)
        settle([(subsets, outcome.returncode, outcome.stderr)], "subset_", root)
        joined = DeltaTable(str(root / "lake" / "joined"))
        versions = {
            v: DeltaTable(str(root / "lake" / "joined"), version=v).to_pyarrow_table()
            for v in range(joined.version() + 1)
        }
        runs = read_any(root / "lake" / "runs").to_pandas()
        matching = []
        for spec in config.subsets:
            table = read_any(root / "lake" / spec.table)
            got = set(table["hash"].to_pylist())
            matching.append(
                {v for v, t in versions.items() if _subset_hashes(t, spec.threshold, spec.collections) == got}
            )
            latest = runs[(runs["job"] == "subsets") & (runs["target"] == spec.table)].sort_values("finished_at")
            recorded = latest[latest["run_id"] == latest["run_id"].iloc[-1]].set_index("metric")["value"]
            assert recorded["rows"] == table.num_rows, spec.table  # the counts describe the rows written
        assert set.intersection(*matching), f"the subsets were cut from different versions of joined: {matching}"


def test_a_join_committing_between_two_subset_writes_changes_none_of_them(sail, monkeypatch, tmp_path) -> None:
    """The interleaving the test above may or may not produce, forced: joined changes after the first subset."""
    from lake_builders import make_joined, write_joined

    import laion_spark.subsets.build as subsets_build
    from laion_spark.lake.tables import write_table
    from laion_spark.subsets import build_subsets

    config = load_pipeline_config(None)
    joined = make_joined(600)
    write_joined(sail, tmp_path / "lake", joined)
    unsafe = joined.set_column(joined.schema.get_field_index("punsafe"), "punsafe", pa.array([0.9] * 600, pa.float32()))
    calls = []

    def write_then_rewrite_joined(lake, df, path, **kwargs):
        write_table(lake, df, path, **kwargs)
        if not calls:  # another writer commits to joined right after the first subset was written
            write_table(sail, sail.spark.createDataFrame(unsafe), tmp_path / "lake" / "joined", mode="overwrite")
        calls.append(path)

    monkeypatch.setattr(subsets_build, "write_table", write_then_rewrite_joined)
    summaries = build_subsets(sail, BuildSubsets(lake=tmp_path / "lake", config=config))
    assert len(calls) == len(config.subsets)
    for spec, summary in zip(config.subsets, summaries, strict=True):
        table = read_any(tmp_path / "lake" / spec.table)
        assert set(table["hash"].to_pylist()) == _subset_hashes(joined, spec.threshold, spec.collections), spec.table
        assert summary.metrics["rows"] == table.num_rows

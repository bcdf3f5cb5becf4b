"""Aesthetic embeddings: bucket means on data with known means, rejects, rating{N}.npy export, guidance."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from deltalake import DeltaTable
from lake_checks import assert_same_tables

from laion_spark.aesthetic.bucket_embeddings import (
    _task_count,
    bucket_sums,
    build_aesthetic_embeddings,
    compute_aesthetic_embeddings,
    export_aesthetic_embeddings,
    guide,
)
from laion_spark.aesthetic.heads import Head, save_linear_head
from laion_spark.aesthetic.params import AestheticEmbeddings, ExportAestheticEmbeddings
from laion_spark.aesthetic.shards import ShardLayoutError

DIM = 768
BIAS = 0.05
HEAD = Head(name="unit-test-l14", model="ViT-L-14", weight=np.eye(DIM)[0] * 10.0, bias=BIAS)


def head_file(folder: Path, head: Head) -> str:
    """``head`` as the file a stage takes: a v1 head file named by the head's name."""
    return str(save_linear_head(folder / f"{head.name}.pth", head.weight, head.bias))


def known_means(seed: int = 0, noise: float = 0.3) -> tuple[np.ndarray, dict[int, np.ndarray], dict[int, int]]:
    """Unit rows whose score is ``b + 0.55`` for bucket ``b``, built in ± pairs so each bucket's mean is known.

    Row = ``c_b ± noise * u`` with ``c_b = x0 e0 + sqrt(1 - x0² - noise²) e_(1+b)`` and ``u`` orthogonal to
    ``e0`` and ``e_(1+b)``: every row has unit length and the head sees only ``x0``.
    """
    rng = np.random.default_rng(seed)
    rows, means, counts = [], {}, {}
    for b in range(10):
        x0 = (b + 0.5) / 10
        centre = np.zeros(DIM)
        centre[0], centre[1 + b] = x0, np.sqrt(1 - x0**2 - noise**2)
        pairs = 3 + 2 * b
        u = rng.normal(size=(pairs, DIM))
        u[:, [0, 1 + b]] = 0
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        rows += [centre + noise * u, centre - noise * u]
        means[b] = centre / np.linalg.norm(centre)
        counts[b] = 2 * pairs
    data = np.concatenate(rows)
    return data[rng.permutation(len(data))], means, counts


def write_shards(root: Path, blocks: list[np.ndarray]) -> Path:
    """A parquet_npy folder with one shard per block (float16 embeddings, aligned metadata)."""
    (root / "img_emb").mkdir(parents=True)
    (root / "metadata").mkdir()
    for i, block in enumerate(blocks):
        np.save(root / "img_emb" / f"img_emb_{i:04d}.npy", block.astype(np.float16))
        urls = [f"https://example.com/{i}/{j}.jpg" for j in range(len(block))]
        pq.write_table(
            pa.table({"url": urls, "caption": ["c"] * len(block)}), root / "metadata" / f"metadata_{i:04d}.parquet"
        )
    return root


def test_bucket_sums_reproduce_known_bucket_means():
    data, means, counts = known_means()
    sums, got_counts, rejected = bucket_sums(data.astype(np.float16), HEAD, chunk_rows=17)
    assert rejected == 0
    assert got_counts.tolist() == [counts[b] for b in range(10)]
    for b in range(10):
        mean = sums[b] / got_counts[b]
        np.testing.assert_allclose(mean / np.linalg.norm(mean), means[b], atol=2e-3)


def test_scores_outside_0_to_10_are_clipped_into_buckets_0_and_9():
    low, high = np.zeros((2, DIM)), np.zeros((3, DIM))
    low[:, 0], low[:, 5] = -0.3, np.sqrt(1 - 0.09)  # score -2.95
    high[:, 0] = 1.0  # score 10.05
    _, counts, rejected = bucket_sums(np.concatenate([low, high]), HEAD)
    assert counts[0] == 2 and counts[9] == 3 and counts.sum() == 5 and rejected == 0


def test_nan_infinite_and_zero_rows_are_rejected_and_counted():
    data, _, counts = known_means()
    bad = np.zeros((4, DIM))
    bad[1, 3] = np.nan
    bad[2, 7] = np.inf
    bad[3, :] = np.nan
    sums, got, rejected = bucket_sums(np.concatenate([data, bad]), HEAD)
    assert rejected == 4 and got.sum() + rejected == len(data) + 4
    assert np.isfinite(sums).all()


def test_spark_job_over_several_folders_equals_one_numpy_pass(sail, tmp_path):
    data, means, counts = known_means(seed=1)
    thirds = np.array_split(data, 3)
    first = write_shards(tmp_path / "en", thirds[:2])
    second = write_shards(tmp_path / "multi", thirds[2:])
    rows, summary = compute_aesthetic_embeddings(sail, [first, second], HEAD)
    assert summary.metrics == {"shards": 3, "rows": len(data), "rows_bucketed": len(data), "rows_rejected": 0}
    sums, expected_counts, _ = bucket_sums(data.astype(np.float16), HEAD)
    for model, head, bucket, count, embedding in rows:
        assert (model, head) == ("ViT-L-14", "unit-test-l14")
        assert count == expected_counts[bucket] == counts[bucket]
        emb = np.asarray(embedding, dtype=np.float32)
        np.testing.assert_allclose(np.linalg.norm(emb), 1.0, atol=1e-5)
        np.testing.assert_allclose(emb, sums[bucket] / np.linalg.norm(sums[bucket]), atol=1e-6)
        np.testing.assert_allclose(emb, means[bucket], atol=2e-3)


def test_more_shards_than_tasks_are_dealt_to_the_tasks_with_the_same_result(sail, tmp_path):
    data, _, _ = known_means(seed=2)
    shards = write_shards(tmp_path / "en", np.array_split(data, 5))
    one_per_shard, _ = compute_aesthetic_embeddings(sail, [shards], HEAD)
    width = sail.spark.conf.get("spark.sql.shuffle.partitions")
    sail.spark.conf.set("spark.sql.shuffle.partitions", "2")
    try:
        assert _task_count(sail, 5) == 2 and _task_count(sail, 1) == 1
        dealt, summary = compute_aesthetic_embeddings(sail, [shards], HEAD)
        sail.spark.conf.set("spark.sql.shuffle.partitions", "auto")
        assert _task_count(sail, 5) == 5
    finally:
        sail.spark.conf.set("spark.sql.shuffle.partitions", width)
    assert summary.metrics == {"shards": 5, "rows": len(data), "rows_bucketed": len(data), "rows_rejected": 0}
    for (*keys, count, embedding), (*same_keys, same_count, same_embedding) in zip(dealt, one_per_shard, strict=True):
        assert (keys, count) == (same_keys, same_count)
        np.testing.assert_allclose(embedding, same_embedding, atol=1e-7)


def test_rebuilding_replaces_only_that_heads_rows(sail, tmp_path):
    data, _, _ = known_means(seed=2)
    shards = write_shards(tmp_path / "emb", [data])
    other = Head(name="other-l14", model="ViT-L-14", weight=HEAD.weight, bias=1.05)
    lake_dir = tmp_path / "lake"
    for head in (HEAD, other, HEAD):
        stage = AestheticEmbeddings(embeddings=[shards], head=head_file(tmp_path, head), lake=lake_dir)
        build_aesthetic_embeddings(sail, stage)
    table = DeltaTable(str(lake_dir / "aesthetic_embeddings")).to_pandas()
    assert sorted(table.groupby("head").size().items()) == [("other-l14", 10), ("unit-test-l14", 10)]
    assert table[table["head"] == "other-l14"].set_index("bucket")["count"][0] == 0  # every score shifted up by 1
    empty = table[(table["head"] == "other-l14") & (table["bucket"] == 0)]["embedding"].iloc[0]
    assert empty is None


def test_shard_width_not_matching_the_head_is_refused_naming_the_file(sail, tmp_path):
    shards = write_shards(tmp_path / "b32", [np.ones((4, 512)) / np.sqrt(512)])
    with pytest.raises(ShardLayoutError, match=r"img_emb_0000\.npy: embeddings are 512-d.*expects 768"):
        compute_aesthetic_embeddings(sail, [shards], HEAD)


def test_exported_rating_files_load_like_laions(sail, tmp_path, reference):
    data, means, _ = known_means(seed=3)
    shards = write_shards(tmp_path / "emb", [data])
    stage = AestheticEmbeddings(embeddings=[shards], head=head_file(tmp_path, HEAD), lake=tmp_path / "lake")
    build_aesthetic_embeddings(sail, stage)
    written = export_aesthetic_embeddings(sail, ExportAestheticEmbeddings(lake=tmp_path / "lake", out=tmp_path / "out"))
    assert sorted(written) == list(range(10))
    for b in range(10):
        ours, theirs = written[b], reference / "vit_l_14_embeddings" / f"rating{b}.npy"
        assert ours.name == theirs.name
        assert ours.stat().st_size == theirs.stat().st_size
        assert ours.read_bytes()[:128] == theirs.read_bytes()[:128]  # same .npy header: <f4, C order, (1, 768)
        a, r = np.load(ours), np.load(theirs)
        assert (a.dtype, a.shape) == (r.dtype, r.shape)
        np.testing.assert_allclose(np.linalg.norm(a), 1.0, atol=1e-5)
        np.testing.assert_allclose(a[0], means[b], atol=2e-3)


def test_export_needs_a_head_when_the_table_holds_several(sail, tmp_path):
    data, _, _ = known_means(seed=4)
    shards = write_shards(tmp_path / "emb", [data])
    for head in (HEAD, Head(name="second", model="ViT-L-14", weight=HEAD.weight, bias=0.0)):
        stage = AestheticEmbeddings(embeddings=[shards], head=head_file(tmp_path, head), lake=tmp_path / "lake")
        build_aesthetic_embeddings(sail, stage)
    with pytest.raises(ValueError, match="choose one with --head"):
        export_aesthetic_embeddings(sail, ExportAestheticEmbeddings(lake=tmp_path / "lake", out=tmp_path / "out"))
    assert sorted(
        export_aesthetic_embeddings(
            sail, ExportAestheticEmbeddings(lake=tmp_path / "lake", out=tmp_path / "out", head="second")
        )
    ) == list(range(10))


def test_guide_is_the_normalised_sum_of_query_and_weighted_aesthetic(reference):
    aesthetic = np.load(reference / "vit_l_14_embeddings" / "rating9.npy")
    rng = np.random.default_rng(5)
    queries = rng.normal(size=(4, DIM))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    guided = guide(queries, aesthetic, weight=0.5)
    expected = queries + 0.5 * aesthetic
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert guided.dtype == np.float32 and guided.shape == (4, DIM)
    np.testing.assert_allclose(guided, expected, atol=1e-6)
    np.testing.assert_allclose(guide(queries[0], aesthetic), guide(queries[:1], aesthetic)[0], atol=1e-7)
    assert (guided @ aesthetic[0] > queries @ aesthetic[0]).all()


def test_guide_refuses_a_zero_length_result_and_mismatched_widths():
    q = np.ones(8) / np.sqrt(8)
    with pytest.raises(ValueError, match="zero or non-finite"):
        guide(q, -q)
    with pytest.raises(ValueError, match="width 8 differs"):
        guide(q, np.ones(4))


def test_cli_builds_and_exports_rating_files(tmp_path):
    data, means, _ = known_means(seed=6)
    shards = write_shards(tmp_path / "emb", [data[: len(data) // 2], data[len(data) // 2 :]])
    head = save_linear_head(tmp_path / "unit-l14.pth", HEAD.weight, BIAS)
    lake_dir, out = tmp_path / "lake", tmp_path / "ratings"
    build = run_cli("aesthetic-embeddings", "--embeddings", str(shards), "--head", str(head), "--lake", str(lake_dir))
    assert re.search(rf"rows_bucketed\s+{len(data):,}\n", build.stdout)
    export = run_cli("export-aesthetic-embeddings", "--lake", str(lake_dir), "--out", str(out))
    assert "wrote 10 files" in export.stdout
    np.testing.assert_allclose(np.load(out / "rating4.npy")[0], means[4], atol=2e-3)


@pytest.mark.classic
def test_classic_spark_averages_the_same_bucket_embeddings(classic_run, reference_run):
    """aesthetic-embeddings on classic Spark: the same bucket means (to 5 decimals) and the same rating files."""
    assert_same_tables(classic_run, reference_run, ["aesthetic_embeddings"])
    ratings = sorted(p.name for p in (reference_run / "aesthetic_embeddings").glob("rating*.npy"))
    assert ratings
    for name in ratings:
        np.testing.assert_allclose(
            np.load(classic_run / "aesthetic_embeddings" / name),
            np.load(reference_run / "aesthetic_embeddings" / name),
            atol=1e-6,
        )

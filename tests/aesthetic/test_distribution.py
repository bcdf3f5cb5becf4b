"""Score distribution: unit buckets by floor, out-of-range and missing buckets, LAION's printed form."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import run_cli
from deltalake import DeltaTable
from lake_checks import assert_same_tables

from laion_spark.aesthetic.buckets import BUCKETS, PUBLISHED_2B_EN, choose_unit, format_distribution, laion_form
from laion_spark.aesthetic.distribution import build_score_distribution, read_score_distribution
from laion_spark.aesthetic.params import ScoreDistribution
from laion_spark.lake.tables import write_table

TAGS_SCHEMA = pa.schema(
    [
        ("hash", pa.int64()),
        ("aesthetic", pa.float32()),
        ("collection", pa.string()),
        ("shard", pa.int32()),
        ("head", pa.string()),
    ]
)
EDGES = {  # score -> bucket
    -0.01: "below_0",
    0.0: "0-1",
    0.999: "0-1",
    1.0: "1-2",
    4.5: "4-5",
    9.999: "9-10",
    10.0: "10_and_above",
    float("inf"): "missing",  # non-finite: not a score (laion_spark.lake.finite)
    float("-inf"): "missing",
    float("nan"): "missing",
    None: "missing",
}


def tags_table(scores: list[float | None], collection: str, head: str) -> pa.Table:
    n = len(scores)
    return pa.table(
        {
            "hash": np.arange(n, dtype=np.int64),
            "aesthetic": pa.array(scores, pa.float32()),
            "collection": [collection] * n,
            "shard": np.zeros(n, np.int32),
            "head": [head] * n,
        },
        schema=TAGS_SCHEMA,
    )


def write_tags(lake, lake_dir, tables: list[pa.Table]) -> None:
    write_table(
        lake, lake.spark.createDataFrame(pa.concat_tables(tables)), lake_dir / "aesthetic_tags", mode="overwrite"
    )


@pytest.fixture(scope="module")
def lake_dir(sail, tmp_path_factory):
    lake_dir = tmp_path_factory.mktemp("dist") / "lake"
    rng = np.random.default_rng(1)
    en = rng.normal(4.8, 1.4, 5000).astype(np.float32).tolist() + [None, float("nan")]
    multi = rng.normal(4.5, 1.6, 3000).astype(np.float32).tolist()
    write_tags(
        sail,
        lake_dir,
        [
            tags_table(en, "laion2B-en", "laion-v1-l14"),
            tags_table(multi, "laion2B-multi", "laion-v1-l14"),
            tags_table(multi[:1000], "laion2B-multi", "synthetic-l14"),
        ],
    )
    return lake_dir


def test_counts_sum_to_the_scored_rows_of_each_collection_and_head(sail, lake_dir):
    table = build_score_distribution(sail, ScoreDistribution(lake=lake_dir))
    sums = table.groupby(["collection", "head"])["count"].sum().to_dict()
    assert sums == {
        ("laion2B-en", "laion-v1-l14"): 5002,
        ("laion2B-multi", "laion-v1-l14"): 3000,
        ("laion2B-multi", "synthetic-l14"): 1000,
    }


def test_unit_buckets_match_numpy_floor(sail, lake_dir):
    table = build_score_distribution(sail, ScoreDistribution(lake=lake_dir))
    rng = np.random.default_rng(1)
    en = rng.normal(4.8, 1.4, 5000).astype(np.float32)
    got = table[(table["collection"] == "laion2B-en")].set_index("bucket")["count"]
    for k in range(10):
        assert got[f"{k}-{k + 1}"] == int(np.sum(np.floor(en) == k)), k
    assert got["below_0"] == int(np.sum(en < 0)) and got["10_and_above"] == int(np.sum(en >= 10))
    assert got["missing"] == 2


def test_edge_scores_fall_in_the_documented_buckets(sail, tmp_path):
    write_tags(sail, tmp_path, [tags_table(list(EDGES), "laion1B-nolang", "h")])
    table = build_score_distribution(sail, ScoreDistribution(lake=tmp_path)).set_index("bucket")["count"]
    expected = {b: 0 for b in BUCKETS}
    for bucket in EDGES.values():
        expected[bucket] += 1
    assert table.to_dict() == expected


def test_stored_table_lists_every_bucket_in_order(sail, lake_dir):
    build_score_distribution(sail, ScoreDistribution(lake=lake_dir))
    stored = DeltaTable(str(lake_dir / "score_distribution")).to_pandas()
    assert set(stored.columns) == {"collection", "head", "bucket", "bucket_order", "count"}
    for _, group in stored.groupby(["collection", "head"]):
        group = group.sort_values("bucket_order")
        assert list(group["bucket"]) == list(BUCKETS)
    read = read_score_distribution(sail, lake_dir)
    assert len(read) == 3 * len(BUCKETS)


def test_laion_form_reproduces_the_published_strings():
    counts = {b: int(round(v)) for b, v in PUBLISHED_2B_EN.items()}
    assert laion_form(counts) == {
        "0-1": "2.66M",
        "1-2": "25.62M",
        "2-3": "147.55M",
        "3-4": "410.18M",
        "4-5": "656.38M",
        "5-6": "601.73M",
        "6-7": "271.19M",
        "7-8": "51.43M",
        "8-9": "3.35M",
        "9-10": "0.05M",
    }


def test_small_counts_switch_to_thousands_or_exact_counts():
    assert choose_unit({"4-5": 2_500}) == ("K", 1e3)
    assert laion_form({"4-5": 2_500, "9-10": 3})["4-5"] == "2.50K"
    assert laion_form({"4-5": 120, "9-10": 3}) == {
        **{f"{k}-{k + 1}": "0" for k in range(10)},
        "4-5": "120",
        "9-10": "3",
    }


def test_formatted_stats_show_laion_form_and_exact_counts(sail, lake_dir):
    text = format_distribution(build_score_distribution(sail, ScoreDistribution(lake=lake_dir)))
    assert "laion2B-en  head laion-v1-l14  rows 5,002" in text
    assert "{'0-1': " in text and "missing" in text
    assert text.count("rows ") == 3


def test_stats_command_prints_the_distribution(lake_dir):
    proc = run_cli("stats", "--lake", str(lake_dir))
    assert "laion2B-multi  head synthetic-l14  rows 1,000" in proc.stdout
    assert "'4-5': '" in proc.stdout


@pytest.mark.classic
def test_classic_spark_counts_the_same_distribution(classic_run, reference_run):
    """stats on classic Spark: the same counts per bucket, collection and head as on Sail."""
    assert_same_tables(classic_run, reference_run, ["score_distribution"])


def test_the_stats_run_counts_the_non_finite_scores_it_puts_in_missing(sail, tmp_path):
    write_tags(sail, tmp_path, [tags_table(list(EDGES), "laion1B-nolang", "h")])
    build_score_distribution(sail, ScoreDistribution(lake=tmp_path))
    runs = DeltaTable(str(tmp_path / "runs")).to_pandas()
    metrics = dict(zip(runs["metric"], runs["value"], strict=True))
    assert metrics["rows_non_finite_score"] == 3  # NaN, +inf, -inf (null is missing, not non-finite)
    assert metrics["rows_missing_score"] == 4

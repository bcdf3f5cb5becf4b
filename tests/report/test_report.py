"""The run report: self-contained HTML, charts beside it, escaped captions, funnel counts, Chromium rendering."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from browser import console_errors, dump_dom, require_chromium
from conftest import run_cli
from lake_builders import make_joined, write_joined
from PIL import Image

from laion_spark.aesthetic.distribution import build_score_distribution
from laion_spark.aesthetic.params import ScoreDistribution
from laion_spark.lake.collections import JOINED_SCHEMA
from laion_spark.lake.tables import write_table
from laion_spark.report import build_report
from laion_spark.report.data import gather_report_data, latest_runs
from laion_spark.report.params import Report
from laion_spark.subsets.build import build_subsets
from laion_spark.subsets.params import BuildSubsets, SafetyConfig, SubsetsConfig, SubsetSpec

CONFIG = SubsetsConfig(
    safety=SafetyConfig(),
    subsets=(SubsetSpec("laion_art", 8.0, extra_columns=("LANGUAGE",)), SubsetSpec("aesthetics_6plus", 6.0)),
    shuffle_seed=1,
    target_files=2,
)


def write_tags(lake, lake_dir: Path, joined: pa.Table, head: str) -> None:
    """``aesthetic_tags`` holding the joined rows' scores, as the scoring job would have written them."""
    tags = pa.table(
        {
            "hash": joined["hash"],
            "aesthetic": joined["aesthetic"],
            "collection": joined["collection"],
            "shard": pa.array(np.zeros(joined.num_rows, np.int32)),
            "head": pa.array([head] * joined.num_rows),
        }
    )
    write_table(lake, lake.spark.createDataFrame(tags), lake_dir / "aesthetic_tags", mode="overwrite")


@pytest.fixture(scope="module")
def lake_dir(sail, tmp_path_factory) -> Path:
    """A lake with every table the report reads, scored by a synthetic head."""
    lake_dir = tmp_path_factory.mktemp("report") / "lake"
    joined = make_joined(rows=1200, seed=5)
    write_joined(sail, lake_dir, joined)
    write_tags(sail, lake_dir, joined, "synthetic-l14")
    build_subsets(sail, BuildSubsets(lake=lake_dir, config=CONFIG))
    build_score_distribution(sail, ScoreDistribution(lake=lake_dir))
    return lake_dir


@pytest.fixture(scope="module")
def report(sail, lake_dir) -> Path:
    return build_report(sail, Report(lake=lake_dir, out=lake_dir.parent / "report", config=CONFIG))


def test_report_embeds_every_chart_and_writes_it_beside_the_page(report):
    page = report.read_text(encoding="utf-8")
    pngs = sorted(p.name for p in report.parent.glob("*.png"))
    assert pngs == [
        "distribution_laion1B-nolang.png",
        "distribution_laion2B-en.png",
        "distribution_laion2B-multi.png",
        "funnel.png",
    ]
    for name in pngs:
        encoded = base64.b64encode((report.parent / name).read_bytes()).decode("ascii")
        assert f'src="data:image/png;base64,{encoded}"' in page, name


def test_report_loads_no_external_assets(report):
    page = report.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in page
    assert not re.search(r"<(script|link|iframe|object)\b", page, re.IGNORECASE)
    assert not re.search(r"""src=["'](?!data:)""", page)
    assert "url(" not in page


def test_synthetic_head_is_named_plainly(report):
    page = report.read_text(encoding="utf-8")
    assert "<code>synthetic-l14</code> is a synthetic head" in page


def test_a_real_head_gets_no_synthetic_notice(sail, tmp_path):
    joined = make_joined(rows=200, seed=6)
    write_tags(sail, tmp_path, joined, "laion-v1-l14")
    page = build_report(sail, Report(lake=tmp_path, out=tmp_path / "report", config=CONFIG)).read_text(encoding="utf-8")
    assert "laion-v1-l14" in page and "synthetic" not in page.lower()


def test_captions_are_escaped_and_non_ascii_survives(sail, tmp_path):
    captions = ["<script>alert('x')</script>", "日本語 🌅 café", 'quote " & amp']
    urls = ["javascript:alert(1)", "https://example.com/a?b=1&c=<2>", None]
    n = len(captions)
    joined = pa.table(
        {
            "URL": urls,
            "TEXT": captions,
            "WIDTH": pa.array([100] * n, pa.int32()),
            "HEIGHT": pa.array([100] * n, pa.int32()),
            "similarity": [0.3] * n,
            "LANGUAGE": ["en"] * n,
            "hash": [1, 2, 3],
            "pwatermark": pa.array([0.1] * n, pa.float32()),
            "punsafe": pa.array([0.1] * n, pa.float32()),
            "aesthetic": pa.array([2.5, 5.5, 8.5], pa.float32()),
            "collection": ["laion2B-en"] * n,
        },
        schema=JOINED_SCHEMA,
    )
    write_joined(sail, tmp_path, joined)
    page = build_report(sail, Report(lake=tmp_path, out=tmp_path / "report", config=CONFIG)).read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "日本語 🌅 café" in page and "quote &quot; &amp; amp" in page
    assert 'href="javascript:' not in page
    assert 'href="https://example.com/a?b=1&amp;c=&lt;2&gt;"' in page
    assert "No aesthetic_tags table" in page


def test_funnel_counts_match_joined_and_the_subset_tables(sail, lake_dir):
    data = gather_report_data(sail, lake_dir, CONFIG)
    funnel = data.funnel.pivot_table(index="stage", columns="collection", values="rows", aggfunc="sum", fill_value=0)
    joined = sail.spark.read.format("delta").load(str(lake_dir / "joined")).groupBy("collection").count().toPandas()
    assert funnel.loc["joined"].to_dict() == dict(zip(joined["collection"], joined["count"], strict=True))
    for spec in CONFIG.subsets:
        table = sail.spark.read.format("delta").load(str(lake_dir / spec.table))
        counts = table.groupBy("collection").count().toPandas()
        assert funnel.loc[spec.table].to_dict() == dict(zip(counts["collection"], counts["count"], strict=True))
    assert (funnel.loc["passed safety"] >= funnel.loc["subset_aesthetics_6plus"]).all()
    assert (funnel.loc["subset_aesthetics_6plus"] >= funnel.loc["subset_laion_art"]).all()


def test_samples_are_picked_per_bucket_up_to_the_limit(sail, lake_dir):
    data = gather_report_data(sail, lake_dir, CONFIG, samples_per_bucket=2)
    per_bucket = data.samples.groupby("bucket").size()
    assert per_bucket.max() == 2 and {"3-4", "4-5", "9-10"} <= set(per_bucket.index)
    for row in data.samples.itertuples():
        low = int(row.bucket.split("-")[0]) if row.bucket[0].isdigit() else None
        if low is not None:
            assert low <= row.aesthetic < low + 1


def test_latest_runs_keep_only_the_newest_run_of_each_job():
    t = pd.Timestamp("2025-01-01", tz="UTC")
    runs = pd.DataFrame(
        {
            "run_id": ["a", "a", "b", "c"],
            "job": ["subsets", "subsets", "subsets", "stats"],
            "collection": ["*"] * 4,
            "engine": ["sail"] * 4,
            "started_at": [t] * 4,
            "finished_at": [t, t, t + pd.Timedelta(1, "h"), t],
            "metric": ["rows", "files", "rows", "rows"],
            "value": [1, 2, 3, 4],
        }
    )
    latest = latest_runs(runs)
    assert sorted(zip(latest["run_id"], latest["metric"], strict=True)) == [("b", "rows"), ("c", "rows")]


@pytest.mark.browser
def test_chromium_renders_the_cli_report_with_its_charts(lake_dir, tmp_path):
    require_chromium()
    out = tmp_path / "cli-report"
    run_cli("report", "--lake", str(lake_dir), "--out", str(out), "--log-scale")
    url = (out / "index.html").as_uri()
    shot = tmp_path / "shot.png"
    assert console_errors(url, tmp_path / "chrome", shot) == []
    dom = dump_dom(url, tmp_path / "chrome")
    assert dom.count('<img src="data:image/png;base64,') == 4
    assert "Score distribution" in dom and "Subset funnel" in dom and "Run summary" in dom
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (2000, 1280)
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 200  # text, bars, anti-aliasing: not a blank page
    bar_blue = np.all(np.abs(image.astype(int) - [0x3B, 0x6F, 0xB6]) <= 6, axis=2)
    assert bar_blue.sum() > 5000  # the distribution bars were drawn

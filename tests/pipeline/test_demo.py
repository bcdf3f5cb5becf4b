"""The demo runs every stage on sample data and leaves the outputs DESIGN.md section 9 lists."""

from __future__ import annotations

import json

import deltalake
import numpy as np
import pyarrow.compute as pc
import pytest

from laion_spark.kv.reader import KV
from laion_spark.lake.layout import COLLECTIONS
from laion_spark.pipeline.demo import choose_head, run_demo

ROWS = 400
#: The whole demo (about 45 s on the 2-core VM), again beside the fast tier's reference run (tests/pipeline_runs.py)
#: that covers the same stages.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(sail, tmp_path_factory, reference):
    out = tmp_path_factory.mktemp("demo")
    head = str(reference / "sa_0_4_vit_l_14_linear.pth")
    lines: list[str] = []
    result = run_demo(out, rows=ROWS, seed=3, head=head, lake=sail, echo=lines.append)
    return result, lines


def test_demo_writes_every_lake_table_as_delta(demo):
    result, _ = demo
    lake = result.out / "lake"
    for name in ("joined", "aesthetic_tags", "score_distribution", "aesthetic_embeddings", "runs"):
        assert deltalake.DeltaTable(str(lake / name)).to_pyarrow_table().num_rows > 0, name
    for name in ("laion_art", "laion_aesthetic", "aesthetics_6plus", "aesthetics_6_5plus"):
        subset = deltalake.DeltaTable(str(lake / f"subset_{name}")).to_pyarrow_table()
        assert subset.column_names[:2] == ["URL", "TEXT"], name


def test_demo_joined_keeps_every_metadata_row_of_every_collection(demo):
    result, _ = demo
    joined = deltalake.DeltaTable(str(result.out / "lake" / "joined")).to_pyarrow_table()
    counts = {c: joined.filter(pc.equal(joined["collection"], c)).num_rows for c in COLLECTIONS}
    assert counts == dict.fromkeys(COLLECTIONS, ROWS)


def test_demo_kv_holds_the_scores_of_aesthetic_tags(demo):
    result, _ = demo
    tags = deltalake.DeltaTable(str(result.out / "lake" / "aesthetic_tags")).to_pyarrow_table()
    with KV(result.out / "kv" / "aesthetic.kv", value_format="e") as kv:
        kv.verify()
        keys = tags["hash"].to_numpy()
        values, found = kv.get_batch(keys)
    assert found.all()
    np.testing.assert_allclose(values[:, 0], tags["aesthetic"].to_numpy().astype(np.float16), rtol=1e-3)


def test_demo_exports_rating_files_and_a_report(demo):
    result, _ = demo
    ratings = sorted(p.name for p in (result.out / "aesthetic_embeddings").glob("rating*.npy"))
    assert ratings and all(np.load(result.out / "aesthetic_embeddings" / r).shape == (1, 768) for r in ratings)
    page = result.outputs["report"].read_text(encoding="utf-8")
    assert "laion-v1-l14" in page and "data:image/png;base64," in page


def test_demo_summary_names_the_head_and_where_each_output_is(demo):
    result, lines = demo
    text = result.format()
    assert result.head == "laion-v1-l14" and result.head_kind.startswith("given: ")
    for name in ("kv/aesthetic.kv", "report", "lake/joined"):
        assert name in text
    assert [name for name, _ in result.stages][0] == "sample data"
    assert any("join-tags [laion2B-en]" in line for line in lines)


def test_every_stage_of_the_demo_records_its_run_under_its_command_name(demo):
    from typer.main import get_command

    from laion_spark.cli import app

    result, _ = demo
    runs = deltalake.DeltaTable(str(result.out / "lake" / "runs")).to_pandas()
    jobs = set(runs["job"])
    assert jobs == {
        "score-embeddings",
        "score-images",
        "join-tags",
        "subsets",
        "stats",
        "aesthetic-embeddings",
        "export-aesthetic-embeddings",
        "build-kv",
        "sample-for-umap",
        "umap",
        "report",
    }
    assert jobs <= set(get_command(app).commands)
    subsets = runs[runs["job"] == "subsets"]
    assert set(subsets["target"]) == {
        f"subset_{n}" for n in ("laion_art", "laion_aesthetic", "aesthetics_6plus", "aesthetics_6_5plus")
    }


def test_demo_reuses_sample_data_made_with_the_same_settings(demo, sail):
    result, _ = demo
    manifest = (result.out / "sample" / "sample.json").read_text()
    lines: list[str] = []
    run_demo(result.out, rows=ROWS, seed=3, head=json.loads(manifest)["head"]["path"], lake=sail, echo=lines.append)
    assert any("reusing" in line for line in lines)
    assert (result.out / "sample" / "sample.json").read_text() == manifest


def test_demo_falls_back_to_the_synthetic_head_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("LAION_SPARK_CACHE", str(tmp_path))
    monkeypatch.setenv("LAION_SPARK_OFFLINE", "1")
    path, kind = choose_head(None)
    assert path is None and kind.startswith("synthetic")

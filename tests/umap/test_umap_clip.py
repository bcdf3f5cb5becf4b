"""The umap command end to end with CLIP text embeddings (the project's tiny model) on demo-style captions."""

from __future__ import annotations

import sys

import deltalake
import numpy as np
import pyarrow as pa
import pytest
from sklearn.manifold import trustworthiness
from typer.testing import CliRunner
from umap_data import make_subset

from laion_spark.cli import app
from laion_spark.clip import ModelSpec, encode_captions, load_model
from laion_spark.lake.layout import COLLECTIONS
from laion_spark.lake.tables import write_table
from laion_spark.sample.metadata import generate_metadata
from laion_spark.subsets.params import PUBLISHED_COLUMNS
from laion_spark.umap import build_umap, gaussian_projection
from laion_spark.umap.params import Umap

#: Their first fit would otherwise pay umap-learn's numba compile (a shared cost: tests/conftest.py).
pytestmark = pytest.mark.usefixtures("umap_compiled")

TINY = "laion-spark-tiny"
ROWS_PER_COLLECTION = 700


def demo_captions(rows_per_collection: int) -> list[str | None]:
    """Captions the demo's sample generator writes, from every collection (as a subset mixes them)."""
    captions: list[str | None] = []
    for index, collection in enumerate(COLLECTIONS):
        captions += generate_metadata(0, collection, index, rows_per_collection).table["TEXT"].to_pylist()
    return captions


def features_64(captions: list[str | None], mode: str = "pooled", seed: int = 0) -> np.ndarray:
    """The job's 64-d input, recomputed outside Spark: CLIP text embeddings (null = empty caption), projected."""
    clip = load_model(ModelSpec.parse(TINY))
    embeddings, _ = encode_captions(clip, [c if c is not None else "" for c in captions], mode=mode)
    return embeddings @ gaussian_projection(embeddings.shape[1], 64, seed)


@pytest.fixture(scope="module")
def demo_lake(sail, tmp_path_factory):
    """A lake whose umap_sample holds demo captions (with the subset's other columns)."""
    lake_dir = tmp_path_factory.mktemp("umap_clip") / "lake"
    captions = demo_captions(ROWS_PER_COLLECTION)
    table = make_subset(len(captions), seed=21, duplicates=0, null_captions=0)
    table = table.set_column(table.schema.get_field_index("TEXT"), "TEXT", pa.array(captions, pa.string()))
    write_table(sail, sail.spark.createDataFrame(table), lake_dir / "umap_sample", mode="overwrite")
    return lake_dir


@pytest.mark.slow  # CLIP and three layouts of the demo's 1,200 captions through the command: 6-8 s
def test_the_command_embeds_with_clip_falls_back_to_umap_learn_and_keeps_neighbourhoods(
    demo_lake, cli_on_sail, monkeypatch
):
    monkeypatch.setitem(sys.modules, "cuml", None)  # cuML absent, whatever the machine has
    result = CliRunner().invoke(app, ["umap", "--lake", str(demo_lake), "--model", TINY, "--epochs", "100"])
    assert result.exit_code == 0, result.output
    assert "warning: cuML does not import here" in result.output and "falls back to umap-learn" in result.output
    assert "umap [*] -> umap run" in result.output and "backend_umap_learn" in result.output
    table = deltalake.DeltaTable(str(demo_lake / "umap")).to_pandas()
    assert list(table.columns) == [*PUBLISHED_COLUMNS, "x_nn10", "y_nn10", "x_nn30", "y_nn30", "x_nn60", "y_nn60"]
    assert len(table) == 3 * ROWS_PER_COLLECTION
    features = features_64(list(table["TEXT"]))
    for n in (10, 30, 60):
        assert trustworthiness(features, table[[f"x_nn{n}", f"y_nn{n}"]].to_numpy(), n_neighbors=10) >= 0.9, n


def test_projected_mode_lays_out_the_normalised_joint_embedding(sail, tmp_path):
    captions = demo_captions(100)
    table = make_subset(len(captions), seed=22, duplicates=0, null_captions=0)
    table = table.set_column(table.schema.get_field_index("TEXT"), "TEXT", pa.array(captions, pa.string()))
    write_table(sail, sail.spark.createDataFrame(table), tmp_path / "umap_sample", mode="overwrite")
    summary = build_umap(
        sail,
        Umap(
            lake=tmp_path,
            model=TINY,
            neighbors=(10,),
            epochs=30,
            mode="projected",
            fit_rows=150,
            seed=2,
            backend="umap-learn",
        ),
    )
    assert summary.metrics["input_dim"] == ModelSpec.parse(TINY).embed_dim() == 768
    assert summary.metrics["rows"] == 300 and summary.metrics["transformed_rows"] == 150
    out = deltalake.DeltaTable(str(tmp_path / "umap")).to_pandas()
    assert out[["x_nn10", "y_nn10"]].notna().all().all()

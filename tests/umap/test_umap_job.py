"""The umap job with umap-learn: the published columns, every sample row once, layouts that keep neighbourhoods."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from pathlib import Path

import deltalake
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.manifold import trustworthiness
from typer.testing import CliRunner
from umap_data import WIDTH, caption_embeddings, make_subset, manifold_embedder

from laion_spark.cli import app
from laion_spark.lake.tables import write_table
from laion_spark.stage import ParamError
from laion_spark.subsets.params import PUBLISHED_COLUMNS
from laion_spark.umap import UmapError, gaussian_projection, layout_sample, select_backend
from laion_spark.umap.params import Umap, parse_neighbors

#: Their first fit would otherwise pay umap-learn's numba compile (a shared cost: tests/conftest.py).
pytestmark = pytest.mark.usefixtures("umap_compiled")

LAYOUTS = {"neighbors": (10, 30), "epochs": 60, "negative_sample_rate": 20, "dim": 64, "seed": 3}


def plan(lake_dir: Path, **values: object) -> Umap:
    """The umap stage over ``lake_dir`` (its model stands aside: these tests embed with a stand-in)."""
    return Umap(lake=str(lake_dir), model="laion-spark-tiny", **values)


KEYS = list(PUBLISHED_COLUMNS)


def write_sample(lake, lake_dir: Path, rows: int, seed: int) -> pd.DataFrame:
    table = make_subset(rows, seed=seed)
    write_table(lake, lake.spark.createDataFrame(table), lake_dir / "umap_sample", mode="overwrite")
    return table.to_pandas()


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEYS, ignore_index=True, na_position="first")


def layout_trust(table: pd.DataFrame, n: int, seed: int) -> float:
    features = caption_embeddings(list(table["TEXT"])) @ gaussian_projection(WIDTH, 64, seed)
    return trustworthiness(features, table[[f"x_nn{n}", f"y_nn{n}"]].to_numpy(), n_neighbors=10)


@pytest.fixture(scope="module")
def fitted(sail, tmp_path_factory):
    """A sample of 500 rows (3 duplicated rows, 2 null captions) laid out on all its rows."""
    lake_dir = tmp_path_factory.mktemp("umap") / "lake"
    sample = write_sample(sail, lake_dir, 500, seed=11)
    summary = layout_sample(sail, plan(lake_dir, **LAYOUTS), manifold_embedder(), select_backend("umap-learn"))
    return lake_dir, sample, summary


def test_the_umap_table_has_the_published_columns_and_every_sample_row_once(fitted):
    lake_dir, sample, summary = fitted
    table = deltalake.DeltaTable(str(lake_dir / "umap")).to_pandas()
    assert list(table.columns) == [*PUBLISHED_COLUMNS, "x_nn10", "y_nn10", "x_nn30", "y_nn30"]
    assert len(table) == len(sample) == summary.metrics["rows"] == 500
    pd.testing.assert_frame_equal(ordered(table[KEYS]), ordered(sample[KEYS]), check_dtype=False)
    assert table[["x_nn10", "y_nn10", "x_nn30", "y_nn30"]].notna().all().all()
    assert all(str(table[c].dtype) == "float32" for c in ("x_nn10", "y_nn30"))
    assert summary.metrics["null_captions"] == 2 and summary.metrics["fit_rows"] == 500


def test_duplicate_rows_get_one_layout_point_each(fitted):
    lake_dir, sample, _ = fitted
    table = deltalake.DeltaTable(str(lake_dir / "umap")).to_pandas()
    duplicated = sample[sample.duplicated("hash", keep=False)]
    assert len(duplicated) == 6
    assert table["hash"].value_counts()[duplicated["hash"]].eq(2).all()


def test_the_layouts_keep_the_neighbourhoods_of_the_64_d_input(fitted):
    lake_dir, _, _ = fitted
    table = deltalake.DeltaTable(str(lake_dir / "umap")).to_pandas()
    for n in (10, 30):
        assert layout_trust(table, n, LAYOUTS["seed"]) >= 0.9


def test_the_backend_and_its_parameters_are_stored_with_the_run(fitted):
    lake_dir, _, summary = fitted
    manifest = json.loads((lake_dir.parent / "umap" / "umap.json").read_text())
    assert manifest["backend"]["name"] == "umap-learn" and manifest["run_id"] == summary.run_id
    assert [f["constructor"]["n_neighbors"] for f in manifest["fits"]] == [10, 30]
    assert {f["constructor"]["n_epochs"] for f in manifest["fits"]} == {60}
    assert manifest["projection"]["from"] == WIDTH and manifest["projection"]["to"] == 64
    runs = deltalake.DeltaTable(str(lake_dir / "runs")).to_pandas()
    metrics = dict(zip(runs["metric"], runs["value"], strict=True))
    assert metrics["backend_umap_learn"] == 1 and metrics["epochs"] == 60 and metrics["negative_sample_rate"] == 20


def test_a_png_per_layout_is_rendered_beside_the_lake(fitted):
    lake_dir, _, summary = fitted
    for n in (10, 30):
        image = np.asarray(Image.open(lake_dir.parent / "umap" / f"umap_nn{n}.png").convert("RGB"))
        assert image.shape == (800, 800, 3)
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # shaded points, not a blank canvas
    assert summary.metrics["renders"] == 2


def test_fit_rows_fits_a_part_and_transforms_the_rest_in_the_tasks(sail, tmp_path, caplog):
    sample = write_sample(sail, tmp_path, 600, seed=12)
    stage = plan(tmp_path, neighbors=(10,), epochs=60, seed=5, fit_rows=200, renders=tmp_path / "png")
    with caplog.at_level(logging.INFO, logger="laion_spark.umap"):
        summary = layout_sample(sail, stage, manifold_embedder(), select_backend("umap-learn"))
    table = deltalake.DeltaTable(str(tmp_path / "umap")).to_pandas()
    assert len(table) == 600 and summary.metrics["fit_rows"] == 200 and summary.metrics["transformed_rows"] == 400
    pd.testing.assert_frame_equal(ordered(table[KEYS]), ordered(sample[KEYS]), check_dtype=False)
    assert layout_trust(table, 10, stage.seed) >= 0.9
    assert "umap transform: 400 rows of one partition done" in caplog.text
    assert "umap nn10: 60/60 epochs" in caplog.text and "umap: wrote 600 rows" in caplog.text
    # The model reached the tasks as a file under the lake, with its parameters and digest, not inside the plan.
    pickled = list((tmp_path / "_umap_models").glob("nn10-*.pkl"))
    assert len(pickled) == 1
    manifest = json.loads(pickled[0].with_suffix(".json").read_text())
    assert manifest["sha256"] == hashlib.sha256(pickled[0].read_bytes()).hexdigest()
    assert manifest["sha256"].startswith(pickled[0].stem.split("-")[1]) and manifest["fit_rows"] == 200
    assert manifest["constructor"]["n_neighbors"] == 10 and manifest["constructor"]["n_epochs"] == 60
    assert f"model of {manifest['bytes'] / 2**20:.1f} MB loaded from {pickled[0]}" in caplog.text


def test_a_changed_model_file_is_refused_in_the_task_and_earlier_runs_models_are_pruned(tmp_path) -> None:
    """Guard: load_model checks the file's digest before unpickling it; prune_models keeps only the run's files."""
    from laion_spark.umap.backends import BackendOptions, FittedLayout, UmapLearnBackend
    from laion_spark.umap.models import ModelFile, load_model, prune_models, save_models

    layout = FittedLayout(10, np.zeros((2, 2), np.float32), pickle.dumps({"model": 1}), BackendOptions({}), 0.1, 64)
    [file] = save_models(tmp_path, [layout], UmapLearnBackend(), 2)
    assert load_model(file) == {"model": 1}
    (tmp_path / "_umap_models" / "nn10-stale.pkl").write_bytes(b"old")
    prune_models(tmp_path, [file])
    assert sorted(p.name for p in (tmp_path / "_umap_models").iterdir()) == sorted(
        [Path(file.path).name, Path(file.path).with_suffix(".json").name]
    )
    changed = ModelFile(10, file.path, "0" * 64, file.size)
    with pytest.raises(UmapError, match="the fitted model changed after the fit"):
        load_model(changed)


def test_a_run_with_other_neighbors_leaves_the_table_as_it_was(sail, fitted):
    lake_dir, _, _ = fitted
    version = deltalake.DeltaTable(str(lake_dir / "umap")).version()
    with pytest.raises(UmapError, match="remove the table folder"):
        layout_sample(sail, plan(lake_dir, neighbors=(15,)), manifold_embedder(), select_backend("umap-learn"))
    assert deltalake.DeltaTable(str(lake_dir / "umap")).version() == version


def test_a_sample_too_small_for_the_neighbourhood_is_refused(sail, tmp_path):
    write_sample(sail, tmp_path, 40, seed=13)
    with pytest.raises(UmapError, match="40 rows; UMAP with n_neighbors=60 needs more"):
        layout_sample(sail, plan(tmp_path, neighbors=(10, 60)), manifold_embedder(), select_backend("umap-learn"))
    assert not (tmp_path / "umap").exists()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"neighbors": ()}, "neighbors: give at least one value"),
        ({"neighbors": (10, 1)}, r"neighbors: expected an integer >= 2, got 1"),
        ({"neighbors": (10, 10)}, r"neighbors: duplicate entries in \[10, 10\]"),
        ({"epochs": 0}, "epochs: expected an integer >= 1, got 0"),
        ({"negative_sample_rate": 0}, "negative_sample_rate: expected an integer >= 1, got 0"),
        ({"dim": 1}, "dim: expected an integer >= 2, got 1"),
        ({"fit_rows": 60}, "fit_rows: 60 must exceed the largest n_neighbors"),
        ({"seed": -3}, "seed: expected an integer >= 0, got -3"),
        ({"seed": 2**32}, "seed: 4294967296 is outside numpy's seed range"),
        ({"backend": "gpu"}, "backend: expected one of auto, cuml, umap-learn, got 'gpu'"),
    ],
)
def test_options_out_of_range_are_named(values, message, tmp_path):
    with pytest.raises(ParamError, match=message):
        plan(tmp_path, **values)


def test_the_neighbors_option_is_parsed_and_checked():
    assert parse_neighbors("10,30,60") == (10, 30, 60)
    assert parse_neighbors(" 15 ") == (15,)
    for text, culprit in (("10,x", "'x'"), ("10,10", "10 is given twice"), ("1", "'1'"), ("", "''")):
        with pytest.raises(UmapError, match=culprit):
            parse_neighbors(text)


def test_the_umap_command_refuses_bad_options_and_a_missing_sample_in_one_line(tmp_path, cli_on_sail, monkeypatch):
    for argv, culprit in (
        (["--neighbors", "10,ten"], "--neighbors '10,ten'"),
        (["--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
        ([], f"no delta table at {tmp_path.resolve()}/umap_sample"),
    ):
        command = ["umap", "--lake", str(tmp_path), "--model", "laion-spark-tiny", "--backend", "umap-learn", *argv]
        result = CliRunner().invoke(app, command)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2, result.output
        assert lines[-1].startswith("error: ") and culprit in lines[-1], result.output
        assert "Traceback" not in result.output

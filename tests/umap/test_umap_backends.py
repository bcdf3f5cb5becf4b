"""UMAP backends: one parameter set mapped to cuML and umap-learn; the fallback; cuML's path against a stand-in."""

from __future__ import annotations

import json
import logging
import pickle
import sys
import textwrap
from pathlib import Path

import deltalake
import numpy as np
import pytest
from umap_data import WIDTH, caption_embeddings, make_subset, manifold_embedder

from laion_spark.lake.tables import write_table
from laion_spark.umap import (
    BackendUnavailableError,
    CumlBackend,
    UmapError,
    UmapLearnBackend,
    UmapParams,
    gaussian_projection,
    layout_sample,
    select_backend,
)
from laion_spark.umap import backends as backends_module
from laion_spark.umap.params import Umap

PARAMS = UmapParams(n_neighbors=30, n_epochs=1000, negative_sample_rate=20, random_state=7)
COMMON = {
    "n_neighbors": 30,
    "n_epochs": 1000,
    "negative_sample_rate": 20,
    "random_state": 7,
    "n_components": 2,
    "min_dist": 0.1,
    "metric": "euclidean",
    "init": "spectral",
}

FAKE_MANIFOLD = '''
"""Stand-in for cuml.manifold: records every call in $FAKE_CUML_CALLS; the layout is 2 x the first two features."""
import json, os
import numpy as np

def record(event, **fields):
    with open(os.environ["FAKE_CUML_CALLS"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\\n")

class UMAP:
    def __init__(self, **kwargs):
        record("init", kwargs=kwargs)
        self.kwargs = kwargs

    def fit(self, X, **kwargs):
        record("fit", kwargs=kwargs, dtype=str(X.dtype), shape=list(X.shape), c_order=bool(X.flags.c_contiguous))
        self.embedding_ = np.ascontiguousarray(X[:, :2] * 2.0, dtype=np.float32)
        return self

    def transform(self, X):
        record("transform", dtype=str(X.dtype), shape=list(X.shape), n_neighbors=self.kwargs["n_neighbors"])
        return X[:, :2] * 2.0
'''
FAKE_RMM = '''
"""Stand-in for rmm: records reinitialize()."""
from cuml.manifold import record

def reinitialize(**kwargs):
    record("rmm.reinitialize", kwargs=kwargs)
'''


@pytest.fixture
def fake_cuml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``cuml`` (with ``cuml.manifold.UMAP``) and ``rmm`` stand-ins importable in this process; the call log's path."""
    root = tmp_path / "site"
    (root / "cuml" / "manifold").mkdir(parents=True)
    (root / "rmm").mkdir()
    (root / "cuml" / "__init__.py").write_text('__version__ = "0.0-stand-in"\n')
    (root / "cuml" / "manifold" / "__init__.py").write_text(textwrap.dedent(FAKE_MANIFOLD))
    (root / "rmm" / "__init__.py").write_text(textwrap.dedent(FAKE_RMM))
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CUML_CALLS", str(calls))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(backends_module, "_rmm_managed", False)
    yield calls
    for name in [m for m in sys.modules if m.split(".")[0] in ("cuml", "rmm")]:
        del sys.modules[name]


def read_calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_umap_learn_gets_the_shared_parameters_and_one_thread_when_seeded():
    options = UmapLearnBackend(exact_below=4096).options(PARAMS, rows=4096)
    assert options.constructor == {**COMMON, "n_jobs": 1, "force_approximation_algorithm": True}
    assert (options.fit, options.distances) == ({}, None)
    assert options.record() == {"constructor": options.constructor, "fit": {}}
    unseeded = UmapParams(n_neighbors=30, random_state=None)
    assert UmapLearnBackend().options(unseeded, 10).constructor["n_jobs"] == -1


def test_umap_learn_below_its_exact_threshold_gets_every_distance_precomputed():
    options = UmapLearnBackend(exact_below=4096).options(PARAMS, rows=4095)
    assert options.constructor == {**COMMON, "n_jobs": 1, "metric": "precomputed"}
    assert options.distances == "euclidean" and options.record()["distances"] == "euclidean"
    assert " metric=precomputed " in options.describe()
    assert options.describe().endswith("n_jobs=1 | exact euclidean distances")


def test_an_exact_distance_fit_finds_the_true_neighbours_and_transforms_near_them(umap_compiled, monkeypatch):
    """The fit's kNN graph is the brute-force one, the pickled model holds the fit rows but not the distance matrix,
    and a transform in blocks smaller than the rows puts each new row beside the fit rows it is nearest to."""
    fit_rows, new = clustered(300)
    params = UmapParams(n_neighbors=10, n_epochs=60, random_state=1)
    layout = UmapLearnBackend().fit(fit_rows, params)
    assert layout.options.distances == "euclidean"
    model = pickle.loads(layout.model)
    assert model.model._raw_data.shape == (300, 0) and len(layout.model) < 2**20
    brute = np.argsort(((fit_rows[:, None, :] - fit_rows[None, :, :]) ** 2).sum(-1), axis=1)[:, :10]
    graph = model.model.graph_.tocsr()
    assert all(set(brute[i]) - {i} <= set(graph[i].indices) for i in range(300))
    monkeypatch.setattr(backends_module, "DISTANCE_BLOCK", 300 * 7)  # transformed 7 rows at a time
    blocks = []
    transform = model.model.transform
    monkeypatch.setattr(model.model, "transform", lambda d: (blocks.append(d.shape), transform(d))[1])
    coords = UmapLearnBackend().transform(model, new)
    assert blocks == [(7, 300)] * 5 + [(5, 300)]
    assert_near_their_clusters(coords, layout.embedding)


def clustered(rows: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Fit rows and 40 new rows round four far-apart centres, row ``i`` of each in cluster ``i % 4``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=20.0, size=(4, 16))
    fit_rows = (centres[np.arange(rows) % 4] + rng.normal(size=(rows, 16))).astype(np.float32)
    return fit_rows, (centres[np.arange(40) % 4] + rng.normal(size=(40, 16))).astype(np.float32)


def assert_near_their_clusters(coords: np.ndarray, embedding: np.ndarray) -> None:
    """Each transformed row lies nearest the centroid of its cluster's fit rows in the layout."""
    assert coords.shape == (40, 2) and coords.dtype == np.float32
    centroids = np.stack([embedding[np.arange(len(embedding)) % 4 == c].mean(0) for c in range(4)])
    nearest = np.argmin(((coords[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == np.arange(40) % 4).all()


@pytest.mark.slow  # the first NN-descent in a process: numba compiles it, 50-75 s on the 2-core VM
def test_from_the_exact_threshold_on_umap_learn_fits_and_transforms_with_nn_descent():
    fit_rows, new = clustered(300)
    backend = UmapLearnBackend(exact_below=100)
    layout = backend.fit(fit_rows, UmapParams(n_neighbors=10, n_epochs=60, random_state=1))
    assert layout.options.distances is None and layout.options.constructor["force_approximation_algorithm"]
    model = pickle.loads(layout.model)
    assert model._knn_search_index is not None  # NN-descent's index: what its transform queries
    assert_near_their_clusters(backend.transform(model, new), layout.embedding)


def test_cuml_gets_the_same_parameters_with_brute_force_knn_for_small_inputs():
    options = CumlBackend(nn_descent_rows=50_000).options(PARAMS, rows=49_999)
    assert options.constructor == {**COMMON, "output_type": "numpy", "build_algo": "brute_force_knn"}
    assert options.fit == {}


def test_cuml_builds_large_inputs_with_nn_descent_from_host_memory_in_batches():
    backend = CumlBackend(nn_descent_rows=50_000, cluster_rows=2_000_000, clusters=4)
    large = backend.options(PARAMS, rows=50_000)
    assert large.constructor["build_algo"] == "nn_descent" and "build_kwds" not in large.constructor
    assert large.fit == {"data_on_host": True}
    huge = backend.options(PARAMS, rows=12_000_000)
    assert huge.constructor["build_kwds"] == {"nnd_n_clusters": 4} and huge.fit == {"data_on_host": True}
    assert "data_on_host=True" in huge.describe()


def test_without_cuml_auto_falls_back_to_umap_learn_and_says_why(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "cuml", None)
    with caplog.at_level(logging.WARNING, logger="laion_spark.umap"):
        backend = select_backend("auto")
    assert isinstance(backend, UmapLearnBackend)
    assert any(
        r.levelno == logging.WARNING
        and "cuML does not import here" in r.getMessage()
        and "umap-learn" in r.getMessage()
        for r in caplog.records
    ), caplog.text
    with pytest.raises(BackendUnavailableError, match="cuML does not import here"):
        select_backend("cuml")
    with pytest.raises(UmapError, match="'umap-lern'"):
        select_backend("umap-lern")


def test_with_cuml_importable_auto_picks_it(fake_cuml):
    backend = select_backend("auto")
    assert isinstance(backend, CumlBackend) and backend.version() == "0.0-stand-in"


@pytest.mark.slow
def test_the_cuml_path_fits_on_the_driver_with_managed_memory_and_transforms_in_the_tasks(
    sail, tmp_path, fake_cuml, caplog
):
    write_table(sail, sail.spark.createDataFrame(make_subset(400, seed=9)), tmp_path / "umap_sample", mode="overwrite")
    backend = CumlBackend(nn_descent_rows=100, cluster_rows=10_000)
    plan = Umap(
        lake=str(tmp_path), model="laion-spark-tiny", neighbors=(10, 30), epochs=25, negative_sample_rate=5,
        seed=4, fit_rows=150, renders=str(tmp_path / "renders"),
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="laion_spark.umap"):
        summary = layout_sample(sail, plan, manifold_embedder(), backend)
    calls = read_calls(fake_cuml)
    managed = [c for c in calls if c["event"] == "rmm.reinitialize"]
    assert managed and all(c["kwargs"] == {"managed_memory": True} for c in managed)
    inits = [c["kwargs"] for c in calls if c["event"] == "init"]
    assert [k["n_neighbors"] for k in inits] == [10, 30]
    for kwargs in inits:
        assert kwargs["n_epochs"] == 25 and kwargs["negative_sample_rate"] == 5 and kwargs["random_state"] == 4
        assert kwargs["build_algo"] == "nn_descent" and kwargs["output_type"] == "numpy"
    fits = [c for c in calls if c["event"] == "fit"]
    assert [f["kwargs"] for f in fits] == [{"data_on_host": True}] * 2
    assert all(f["dtype"] == "float32" and f["shape"] == [150, 64] and f["c_order"] for f in fits)
    transforms = [c for c in calls if c["event"] == "transform"]
    assert {t["dtype"] for t in transforms} == {"float32"} and {t["shape"][1] for t in transforms} == {64}
    for n in (10, 30):
        assert sum(t["shape"][0] for t in transforms if t["n_neighbors"] == n) == 250

    table = deltalake.DeltaTable(str(tmp_path / "umap")).to_pandas()
    features = caption_embeddings(list(table["TEXT"])) @ gaussian_projection(WIDTH, 64, 4)
    for n in (10, 30):
        np.testing.assert_allclose(table[f"x_nn{n}"], 2 * features[:, 0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(table[f"y_nn{n}"], 2 * features[:, 1], rtol=1e-4, atol=1e-4)
    assert summary.metrics["backend_cuml"] == 1
    assert summary.metrics["fit_rows"] == 150 and summary.metrics["transformed_rows"] == 250
    manifest = json.loads((tmp_path / "renders" / "umap.json").read_text())
    assert manifest["backend"] == {"name": "cuml", "version": "0.0-stand-in"}
    assert [f["fit"] for f in manifest["fits"]] == [{"data_on_host": True}] * 2
    assert "umap nn10: cuml 0.0-stand-in on 150 rows: n_neighbors=10" in caplog.text
    assert "build_algo=nn_descent | fit data_on_host=True" in caplog.text

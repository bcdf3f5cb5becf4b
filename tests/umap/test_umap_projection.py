"""The Gaussian random projection: scikit-learn's matrix, computed in Spark tasks, nulls and widths checked."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.random_projection import GaussianRandomProjection

from laion_spark.umap import UmapError, gaussian_projection, project_frame
from laion_spark.umap.projection import list_column, rows_matrix


@pytest.mark.parametrize(("n_features", "n_components", "seed"), [(512, 64, 0), (768, 64, 42), (48, 8, 2**32 - 1)])
def test_the_matrix_is_scikit_learns_gaussian_random_projection(n_features, n_components, seed):
    x = np.random.default_rng(1).normal(size=(20, n_features)).astype(np.float32)
    reference = GaussianRandomProjection(n_components=n_components, random_state=seed).fit(x)
    matrix = gaussian_projection(n_features, n_components, seed)
    assert matrix.dtype == np.float32 and matrix.shape == (n_features, n_components)
    np.testing.assert_allclose(matrix, reference.components_.T, rtol=1e-6)
    np.testing.assert_allclose(x @ matrix, reference.transform(x), rtol=1e-4, atol=1e-4)


def test_entries_have_the_variance_one_over_the_target_width():
    matrix = gaussian_projection(2048, 64, 3).astype(np.float64)
    assert abs(matrix.mean()) < 0.002 and abs(matrix.var() * 64 - 1) < 0.02


def test_the_projection_runs_in_the_tasks_and_keeps_null_embeddings_null(sail):
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(300, 48)).astype(np.float32)
    valid = np.ones(300, bool)
    valid[[3, 150]] = False
    frame = sail.spark.createDataFrame(
        pa.table({"id": np.arange(300), "emb": list_column(rows[valid], valid)}).to_pandas()
    ).repartition(3)
    matrix = gaussian_projection(48, 16, 5)
    out = project_frame(frame, "emb", matrix).toArrow().sort_by("id")
    assert out.column_names == ["id", "features"]
    got, got_valid = rows_matrix(out.column("features"), 16)
    np.testing.assert_array_equal(got_valid, valid)
    np.testing.assert_allclose(got, rows[valid] @ matrix, rtol=1e-5, atol=1e-5)


def test_an_embedding_of_the_wrong_width_is_named():
    column = pa.array([[1.0, 2.0, 3.0], [1.0, 2.0]], pa.list_(pa.float32()))
    with pytest.raises(UmapError, match="an embedding has 2 values where 3 were expected"):
        rows_matrix(column, 3)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_outside_numpys_range_is_refused(seed):
    with pytest.raises(UmapError, match=f"--seed {seed}"):
        gaussian_projection(8, 2, seed)

"""Benchmark: the umap job's UMAP step vs umap-learn called directly, and fit-on-a-part + transform vs fit-on-all.

    .venv/bin/python -m bench.umap [--rows 100000] [--fit-rows 10000] [--epochs 200]
                                   [--overhead-rows 20000] [--repeat 3] [--queries 5000] [--out bench-out/umap]
                                   [--small-rows 3000]

Input: ``--rows`` captions ``bench caption <i>`` whose embeddings (computed in the Spark tasks by
:func:`caption_points`, 256-d) lie near 40 random 3-d sheets, so neighbourhoods are real; the job
projects them to 64-d (seeded Gaussian random projection) like CLIP text.

1. overhead, on the same ``--overhead-rows`` x 64 float32 input and keywords: ``umap.UMAP(**kw).fit_transform``
   vs the job's step :meth:`UmapLearnBackend.fit` (keyword mapping, epoch logging, the model pickled for the
   tasks). One warm-up each (numba compiles), then ``--repeat`` interleaved runs, best kept; goal <= 1.1x.
2. fit rows, the whole ``umap`` job on Sail (sample read, embedding, projection, fit, coordinates back to
   Spark, transform, Delta write, renders; one n_neighbors = 15), after a warm-up run on 2,000 rows:
   fit on all ``--rows`` vs fit on ``--fit-rows`` and transform the rest in Spark partitions. Trustworthiness (k = 10) of each layout
   against the 64-d input uses scikit-learn's formula term by term over ``--queries`` random points
   (sklearn's own function needs the n x n distance matrix: 80 GB for 100k points); the estimator is
   checked against sklearn on a small input first.

3. small samples, below umap-learn's exact threshold (4,096 rows), where the job gives it every distance
   from scikit-learn (``metric="precomputed"``): (a) a fresh interpreter's first fit of 400 rows, numba's
   compile included, with NN-descent (the job's path before 2026-12-07) vs exact; (b) ``--small-rows`` rows,
   warmed, umap-learn direct (its own exact path: a Python callable per pair) vs the job's step, with
   scikit-learn's trustworthiness of each.

umap-learn runs single-threaded here: with a ``random_state`` it ignores ``n_jobs`` (the job seeds it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from laion_spark.engine.factory import open_session
from laion_spark.lake.tables import write_table
from laion_spark.umap import (
    FunctionEmbedder,
    UmapLearnBackend,
    UmapParams,
    gaussian_projection,
    layout_sample,
)
from laion_spark.umap.params import Umap

WIDTH, SHEETS, LATENT = 256, 40, 3
_DIM, _SEED, _NEIGHBORS = 64, 0, 15


def sheet_points(ids: np.ndarray) -> np.ndarray:
    """float32 ``(len(ids), WIDTH)``: caption ``i`` sits on sheet ``i % SHEETS`` at a latent drawn from ``i``."""
    space = np.random.default_rng(99)
    origins = space.normal(0.0, 3.0, (SHEETS, WIDTH))
    spans = space.normal(0.0, 1.0, (SHEETS, LATENT, WIDTH))
    draws = [np.random.default_rng(int(i)) for i in ids]
    latent = np.array([rng.uniform(-1.5, 1.5, LATENT) for rng in draws]).reshape(len(ids), LATENT)
    noise = np.array([rng.normal(0.0, 0.03, WIDTH) for rng in draws]).reshape(len(ids), WIDTH)
    sheet = ids % SHEETS
    return (origins[sheet] + np.einsum("nl,nlw->nw", latent, spans[sheet]) + noise).astype(np.float32)


def caption_points(captions: list[str | None]) -> np.ndarray:
    """:func:`sheet_points` of the ids in captions ``bench caption <i>``: the embedder's function."""
    return sheet_points(np.array([int(c.rsplit(" ", 1)[1]) for c in captions], np.int64))


def sheet_embedder() -> FunctionEmbedder:
    """The job's text embedder for the bench captions, run in the tasks."""
    return FunctionEmbedder(caption_points, WIDTH, "bench sheets")


def sample_table(rows: int) -> pa.Table:
    """``umap_sample`` rows: LAION's columns, captions ``bench caption <i>``, unique hashes."""
    ids = np.arange(rows, dtype=np.int64)
    return pa.table(
        {
            "URL": [f"https://img.example.com/{i}.jpg" for i in ids],
            "TEXT": [f"bench caption {i}" for i in ids],
            "WIDTH": pa.array(np.full(rows, 512, np.int32)),
            "HEIGHT": pa.array(np.full(rows, 512, np.int32)),
            "similarity": np.full(rows, 0.3),
            "punsafe": pa.array(np.full(rows, 0.01, np.float32)),
            "pwatermark": pa.array(np.full(rows, 0.02, np.float32)),
            "AESTHETIC_SCORE": pa.array(np.random.default_rng(5).uniform(6, 10, rows).astype(np.float32)),
            "hash": ids * 7919 + 13,
        }
    )


def features(ids: np.ndarray) -> np.ndarray:
    """The job's 64-d input for captions ``ids``, recomputed outside Spark."""
    return sheet_points(ids) @ gaussian_projection(WIDTH, _DIM, _SEED)


def trustworthiness_sampled(x: np.ndarray, y: np.ndarray, k: int, queries: np.ndarray) -> float:
    """scikit-learn's trustworthiness of layout ``y`` for input ``x``, its sum estimated over the ``queries`` rows.

    For each query the exact input-space rank of each of its ``k`` nearest layout neighbours is counted against
    all rows; the mean penalty over the queries stands in for the mean over all rows. With every row a query this
    is sklearn's value (up to distance ties).
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(x)
    layout_nn = NearestNeighbors(n_neighbors=k + 1).fit(y).kneighbors(y[queries], return_distance=False)
    penalty = 0.0
    for at in range(0, len(queries), 64):
        chunk = queries[at : at + 64]
        dist = ((x[chunk, None, :] - x[None, :, :]) ** 2).sum(-1, dtype=np.float64)
        dist[np.arange(len(chunk)), chunk] = -1.0  # self first, never a neighbour
        neighbours = np.array(
            [[j for j in row if j != q][:k] for q, row in zip(chunk, layout_nn[at : at + 64], strict=True)]
        )
        limits = np.take_along_axis(dist, neighbours, axis=1)
        ranks = (dist[:, None, :] < limits[:, :, None]).sum(-1)  # closer rows, self included = 1-based rank
        penalty += np.clip(ranks - k, 0, None).sum()
    mean_penalty = penalty / len(queries)
    return float(1.0 - mean_penalty * n * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))


def check_estimator(rows: int = 2000) -> tuple[float, float]:
    """``(sklearn, sampled with every row a query)`` on a small input."""
    import umap
    from sklearn.manifold import trustworthiness

    x = features(np.arange(rows))
    keywords = UmapLearnBackend(exact_below=0).options(UmapParams(_NEIGHBORS, 50, 20, _SEED), rows).constructor
    y = umap.UMAP(**keywords).fit_transform(x)
    return trustworthiness(x, y, n_neighbors=10), trustworthiness_sampled(x, y, 10, np.arange(rows))


def overhead(rows: int, epochs: int, repeat: int) -> tuple[float, float]:
    """Best wall seconds of ``(umap-learn direct, the job's step)`` on the same input and keywords."""
    import umap

    x = np.ascontiguousarray(features(np.arange(rows)))
    backend, params = UmapLearnBackend(), UmapParams(_NEIGHBORS, epochs, 20, _SEED)
    keywords = backend.options(params, rows).constructor

    def direct() -> None:
        umap.UMAP(**keywords).fit_transform(x)

    def ours() -> None:
        backend.fit(x, params)

    small = np.ascontiguousarray(x[:3000])
    umap.UMAP(**keywords).fit_transform(small)
    backend.fit(small, params)
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for slot, run in enumerate((direct, ours)):
            started = time.perf_counter()
            run()
            best[slot] = min(best[slot], time.perf_counter() - started)
    return best[0], best[1]


_FIRST_FIT = """
import sys, time
import numpy as np
from laion_spark.umap import UmapLearnBackend, UmapParams
x = np.random.default_rng(0).normal(size=(400, 64)).astype(np.float32)
started = time.perf_counter()
UmapLearnBackend(exact_below=int(sys.argv[1])).fit(x, UmapParams(15, 200, 20, 0))
print(time.perf_counter() - started)
"""


def first_fit(exact_below: int) -> float:
    """Seconds of a fresh interpreter's first fit of 400 x 64 rows (numba's compile included)."""
    proc = subprocess.run(
        [sys.executable, "-c", _FIRST_FIT, str(exact_below)], capture_output=True, text=True, check=True
    )
    return float(proc.stdout.split()[-1])


def small_sample(rows: int, epochs: int) -> tuple[float, float, float, float]:
    """``(direct s, ours s, direct trustworthiness, ours trustworthiness)`` on ``rows`` rows, each warmed once."""
    import umap
    from sklearn.manifold import trustworthiness

    x = np.ascontiguousarray(features(np.arange(rows)))
    backend, params = UmapLearnBackend(), UmapParams(_NEIGHBORS, epochs, 20, _SEED)
    keywords = {**params.common(), "n_jobs": 1}  # umap-learn's own choice of kNN for this size
    umap.UMAP(**keywords).fit_transform(x[:200])
    backend.fit(x[:200], params)
    started = time.perf_counter()
    direct = umap.UMAP(**keywords).fit_transform(x)
    direct_s = time.perf_counter() - started
    layout = backend.fit(x, params)
    return direct_s, layout.seconds, trustworthiness(x, direct, n_neighbors=10), trustworthiness(x, layout.embedding)


def fit_rows_runs(
    out: Path, rows: int, fit_rows: int, epochs: int, queries: int
) -> list[tuple[str, float, float, float]]:
    """``(label, job wall s, fit s, trustworthiness)`` for fitting on all rows and on ``fit_rows`` of them."""
    import deltalake

    lake_dir = out / "lake"
    shutil.rmtree(lake_dir, ignore_errors=True)
    pick = np.random.default_rng(3).choice(rows, size=min(queries, rows), replace=False)
    results = []
    with open_session("sail") as lake:
        warm = out / "warm-up"  # numba (fit, transform) and datashader compile here, before any timing
        write_table(lake, lake.spark.createDataFrame(sample_table(2000)), warm / "umap_sample", mode="overwrite")
        warm_plan = Umap(
            lake=warm, model="laion-spark-tiny", neighbors=(_NEIGHBORS,), epochs=20, fit_rows=1000,
            renders=out / "warm-png",
        )  # fmt: skip
        layout_sample(lake, warm_plan, sheet_embedder(), UmapLearnBackend())
        write_table(lake, lake.spark.createDataFrame(sample_table(rows)), lake_dir / "umap_sample", mode="overwrite")
        for label, fit in (
            (f"fit on all {rows:,}", None),
            (f"fit {fit_rows:,} + transform {rows - fit_rows:,}", fit_rows),
        ):
            shutil.rmtree(lake_dir / "umap", ignore_errors=True)
            plan = Umap(
                lake=lake_dir, model="laion-spark-tiny", neighbors=(_NEIGHBORS,), epochs=epochs,
                negative_sample_rate=20, dim=_DIM, seed=_SEED, fit_rows=fit, renders=out / "renders",
            )  # fmt: skip
            started = time.perf_counter()
            summary = layout_sample(lake, plan, sheet_embedder(), UmapLearnBackend())
            wall = time.perf_counter() - started
            table = deltalake.DeltaTable(str(lake_dir / "umap")).to_pandas()
            ids = table["TEXT"].str.rsplit(" ", n=1).str[1].astype(np.int64).to_numpy()
            order = np.argsort(ids)
            layout = table[[f"x_nn{_NEIGHBORS}", f"y_nn{_NEIGHBORS}"]].to_numpy()[order]
            trust = trustworthiness_sampled(features(ids[order]), layout, 10, pick)
            results.append((label, wall, summary.metrics[f"fit_ms_nn{_NEIGHBORS}"] / 1000, trust))
    return results


def main(argv: list[str] | None = None) -> None:
    """Run both parts and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="sample rows of part 2 (default 100,000)")
    parser.add_argument("--fit-rows", type=int, default=10_000, help="fit rows of part 2 (default 10,000)")
    parser.add_argument("--epochs", type=int, default=200, help="UMAP epochs (default 200; the job's is 1000)")
    parser.add_argument("--overhead-rows", type=int, default=20_000, help="input rows of part 1 (default 20,000)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of part 1, best kept (default 3)")
    parser.add_argument("--queries", type=int, default=5_000, help="rows the trustworthiness sum is taken over")
    parser.add_argument("--out", type=Path, default=Path("bench-out/umap"), help="working folder")
    parser.add_argument("--small-rows", type=int, default=3_000, help="rows of part 3b (default 3,000; < 4,096)")
    args = parser.parse_args(argv)

    sklearn_t, sampled_t = check_estimator()
    print(
        f"trustworthiness estimator on 2,000 points, every row a query: sklearn {sklearn_t:.4f}, ours {sampled_t:.4f}"
    )
    direct_s, ours_s = overhead(args.overhead_rows, args.epochs, args.repeat)
    print(f"\n1. UMAP step on {args.overhead_rows:,} x {_DIM} float32, n_neighbors {_NEIGHBORS}, {args.epochs} epochs")
    print(
        f"   umap-learn direct  {direct_s:8.2f} s\n   the job's step     {ours_s:8.2f} s   overhead {ours_s / direct_s:.3f}x"
    )
    print(f"\n2. umap job on Sail, {args.rows:,} rows, n_neighbors {_NEIGHBORS}, {args.epochs} epochs")
    print(f"   {'run':<34} {'job wall s':>10} {'fit s':>8} {'trustworthiness':>16}")
    for label, wall, fit_s, trust in fit_rows_runs(args.out, args.rows, args.fit_rows, args.epochs, args.queries):
        print(f"   {label:<34} {wall:>10.1f} {fit_s:>8.1f} {trust:>16.4f}")
    print(
        f"   (trustworthiness k = 10, sum over {args.queries:,} random rows; umap-learn {UmapLearnBackend().version()})"
    )
    nn_descent_s, exact_s = first_fit(0), first_fit(UmapLearnBackend().exact_below)
    print("\n3a. first fit in a fresh interpreter, 400 x 64 rows, n_neighbors 15, 200 epochs (numba compile included)")
    print(f"   NN-descent {nn_descent_s:8.2f} s\n   exact      {exact_s:8.2f} s   ratio {exact_s / nn_descent_s:.3f}x")
    direct_s, ours_s, direct_t, ours_t = small_sample(args.small_rows, args.epochs)
    print(f"\n3b. {args.small_rows:,} x {_DIM} rows, n_neighbors {_NEIGHBORS}, {args.epochs} epochs, warmed")
    print(f"   umap-learn direct  {direct_s:8.2f} s   trustworthiness {direct_t:.4f}")
    print(f"   the job's step     {ours_s:8.2f} s   trustworthiness {ours_t:.4f}   ratio {ours_s / direct_s:.3f}x")


if __name__ == "__main__":
    main()

"""The pure pieces of the GPU check's sections, on the CPU: the correctness bounds, the calibrated head,
the out-of-memory back-off's bookkeeping, the model shared by concurrent tasks, the distinct test images."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from bench.clip_inputs import distinct_jpegs
from bench.gpu_concurrency import run_tasks, shared_load
from bench.gpu_correctness import BOUNDS, calibrated_head_weights, compare, cosine_rows
from bench.gpu_oom import BackoffRun, run_with_backoff, verify
from laion_spark.clip import model as clip_model
from laion_spark.clip.device import select_device


def _embeddings(rows: int = 32, dim: int = 64, seed: int = 0) -> np.ndarray:
    e = np.random.default_rng(seed).normal(size=(rows, dim))
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _scores(e: np.ndarray, weight: np.ndarray, bias: float) -> np.ndarray:
    return (e / np.linalg.norm(e, axis=1, keepdims=True)) @ weight + bias


def test_the_same_embeddings_pass_every_bound() -> None:
    e = _embeddings()
    s = _scores(e, *calibrated_head_weights(e))
    result = compare(e, e.copy(), s, s.copy())
    assert result["passed"] and set(result["bounds"]) == set(BOUNDS)
    assert result["bounds"]["min_cosine"]["value"] == pytest.approx(1.0)
    assert all(check["why"] for check in result["bounds"].values())


def test_fp16_sized_noise_passes_and_large_noise_fails_the_cosine_and_spread_bounds() -> None:
    e = _embeddings()
    rng = np.random.default_rng(1)
    small = e + rng.normal(scale=1e-3 / 8, size=e.shape)  # ~1e-3 relative, as fp16 through a deep net
    w, b = calibrated_head_weights(e)
    assert compare(e, small, _scores(e, w, b), _scores(small, w, b))["passed"]
    large = e + rng.normal(scale=0.1, size=e.shape)
    result = compare(e, large, _scores(e, w, b), _scores(large, w, b))
    assert not result["passed"]
    assert not result["bounds"]["min_cosine"]["passed"]
    assert not result["bounds"]["error_over_spread"]["passed"]


def test_rows_out_of_order_fail_the_nearest_neighbour_bound() -> None:
    e = _embeddings()
    swapped = e[[1, 0, *range(2, len(e))]]
    s = _scores(e, *calibrated_head_weights(e))
    result = compare(e, swapped, s, s)
    assert result["bounds"]["top1_matches"]["value"] == pytest.approx(1 - 2 / len(e))
    assert not result["bounds"]["top1_matches"]["passed"] and not result["passed"]


def test_a_score_shift_over_a_tenth_fails_only_the_score_bound() -> None:
    e = _embeddings()
    s = _scores(e, *calibrated_head_weights(e))
    result = compare(e, e, s, s + np.where(np.arange(len(s)) == 3, 0.15, 0.0))
    failed = [name for name, check in result["bounds"].items() if not check["passed"]]
    assert failed == ["max_score_diff"]


def test_the_calibrated_head_scores_the_reference_at_mean_5_and_spread_1() -> None:
    e = _embeddings(64, 768) * 3.0  # unnormalised rows: the head normalises, as Head.score does
    weight, bias = calibrated_head_weights(e, seed=7)
    scores = _scores(e, weight, bias)
    assert scores.mean() == pytest.approx(5.0) and scores.std() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no spread"):
        calibrated_head_weights(np.ones((4, 8)))


def test_compare_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        compare(_embeddings(4), _embeddings(5), np.zeros(4), np.zeros(5))
    assert cosine_rows(np.eye(2), np.eye(2)[::-1]).tolist() == [0.0, 0.0]


def test_the_back_off_halves_until_a_batch_fits_and_scores_every_row_once() -> None:
    def forward(start: int, stop: int) -> np.ndarray:
        if stop - start > 5:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: a batch of {stop - start}")
        return np.arange(start, stop, dtype=np.float32)[:, None]

    run = run_with_backoff(50, 40, forward)
    result = verify(run)
    assert result["passed"], result
    assert (result["start_batch"], result["final_batch"], result["halvings"]) == (40, 5, 3)
    assert result["log"][0] == "CUDA out of memory on a batch of 40 images: retrying with batches of 20"
    assert np.concatenate(run.outputs)[:, 0].tolist() == list(range(50))


def test_verify_catches_a_row_scored_twice_a_gap_and_a_run_that_never_halved() -> None:
    out = [np.zeros((5, 1))] * 2
    twice = verify(
        BackoffRun(10, 8, out, [(0, 5), (3, 8), (8, 10)], ["CUDA out of memory x retrying with batches of 5"], 1, 5)
    )
    assert not twice["checks"]["every_row_once"] and twice["rows_scored_twice"] == 2 and not twice["passed"]
    gap = verify(BackoffRun(10, 8, out, [(0, 5), (6, 10)], ["CUDA out of memory x retrying with batches of 5"], 1, 5))
    assert gap["rows_never_scored"] == 1 and not gap["checks"]["in_order"]
    never = verify(BackoffRun(10, 10, [np.zeros((10, 1))], [(0, 10)], [], 0, 10))
    assert never["checks"]["halved"] is False and not never["passed"]
    unlogged = verify(BackoffRun(10, 8, out, [(0, 5), (5, 10)], [], 1, 5))
    assert not unlogged["checks"]["each_halving_logged"]


def test_concurrent_tasks_asking_for_the_tiny_model_share_one_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clip_model, "_CACHE", {})
    monkeypatch.setattr(clip_model, "_LOADS", Counter())
    result = shared_load("laion-spark-tiny", tasks=4)
    assert result["passed"] and result["same_object"]
    device = select_device()  # each task chose it itself: the CPU here, cuda:0 on a GPU machine
    assert result["loads"] == {device: 1} and result["devices_chosen"] == [device]


def test_without_the_cache_lock_concurrent_tasks_would_each_build_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sharing check can fail: with a lock that does not exclude, the 4 tasks build 4 models."""

    class NoLock:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(clip_model, "_CACHE", {})
    monkeypatch.setattr(clip_model, "_LOADS", Counter())
    monkeypatch.setattr(clip_model, "_LOCK", NoLock())
    result = shared_load("laion-spark-tiny", tasks=4)
    assert not result["passed"] and result["loads"][select_device()] > 1


def test_run_tasks_releases_the_tasks_together_and_reports_their_errors() -> None:
    seconds, items, errors = run_tasks(3, lambda task: task + 1)
    assert items == 6 and errors == [] and seconds >= 0

    def fail(task: int) -> int:
        if task == 1:
            raise RuntimeError("task 1 broke")
        return 1

    _, items, errors = run_tasks(2, fail)
    assert items == 1 and [str(e) for e in errors] == ["task 1 broke"]


def test_the_correctness_images_are_different_decodable_jpegs_of_img2dataset_sizes() -> None:
    jpegs, sources = distinct_jpegs(12)
    assert len(set(jpegs)) == 12 and len(sources) == 12
    for data in jpegs:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG" and 224 <= min(image.size) <= 512
    assert distinct_jpegs(3)[0] == jpegs[:3]

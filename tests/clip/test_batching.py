"""Inference batches: sized on their own, halved and retried on CUDA out-of-memory, logged."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from laion_spark.clip.batching import InferenceBatches


def test_slices_cover_the_rows_in_order_whatever_the_size() -> None:
    seen: list[tuple[int, int]] = []

    def forward(start: int, stop: int) -> np.ndarray:
        seen.append((start, stop))
        return np.arange(start, stop)[:, None]

    out = InferenceBatches(4).run(10, forward)
    assert seen == [(0, 4), (4, 8), (8, 10)]
    assert np.concatenate(out)[:, 0].tolist() == list(range(10))
    assert InferenceBatches(4).run(0, forward) == []


def test_out_of_memory_halves_the_batch_retries_and_keeps_the_smaller_size(caplog: pytest.LogCaptureFixture) -> None:
    sizes: list[int] = []

    def forward(start: int, stop: int) -> np.ndarray:
        sizes.append(stop - start)
        if stop - start > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return np.arange(start, stop)[:, None]

    batches = InferenceBatches(16, "images")
    with caplog.at_level(logging.WARNING, logger="laion_spark.clip"):
        out = batches.run(20, forward)
    assert np.concatenate(out)[:, 0].tolist() == list(range(20))
    assert sizes[:3] == [16, 8, 4] and set(sizes[3:]) <= {2}
    assert (batches.size, batches.halvings) == (2, 3)
    assert "CUDA out of memory on a batch of 16 images: retrying with batches of 8" in caplog.text


def test_a_single_row_that_does_not_fit_re_raises() -> None:
    def forward(start: int, stop: int) -> np.ndarray:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        InferenceBatches(2).run(3, forward)


def test_other_errors_are_not_retried() -> None:
    calls = []

    def forward(start: int, stop: int) -> np.ndarray:
        calls.append(start)
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        InferenceBatches(8).run(8, forward)
    assert calls == [0]


@pytest.mark.parametrize(
    "message",
    [
        "CUDA error: out of memory",
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    ],
)
def test_a_library_workspace_out_of_memory_is_backed_off_too(message: str) -> None:
    """cuBLAS and cuDNN allocate their workspaces outside PyTorch's allocator: their failure is a RuntimeError."""

    def forward(start: int, stop: int) -> np.ndarray:
        if stop - start > 2:
            raise RuntimeError(message)
        return np.arange(start, stop)[:, None]

    batches = InferenceBatches(8)
    assert np.concatenate(batches.run(8, forward))[:, 0].tolist() == list(range(8))
    assert batches.size == 2


def test_a_runtime_error_that_is_not_about_memory_is_not_retried() -> None:
    calls = []

    def forward(start: int, stop: int) -> np.ndarray:
        calls.append(start)
        raise RuntimeError("CUDA error: device-side assert triggered")

    with pytest.raises(RuntimeError, match="device-side assert"):
        InferenceBatches(8).run(8, forward)
    assert calls == [0]

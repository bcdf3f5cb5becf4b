"""Inference batches, sized independently of the Arrow batches Spark hands a task, with out-of-memory back-off.

A task receives rows in whatever batches the engine chose; :class:`InferenceBatches` cuts the work into
model forwards of at most ``size`` items. When a forward runs out of GPU memory the batch is halved and
retried (logged as a warning); the smaller size is kept for the rest of the task. A batch of one that still
does not fit re-raises the error. Out of memory is CUDA's caching allocator's ``OutOfMemoryError``, or the
``RuntimeError`` a cuBLAS or cuDNN workspace allocation raises (:func:`is_out_of_memory`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import numpy as np

log = logging.getLogger("laion_spark.clip")
#: How CUDA libraries say that an allocation failed outside PyTorch's allocator.
_OUT_OF_MEMORY = re.compile(r"out of memory|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED", re.IGNORECASE)


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` says the GPU ran out of memory: ``torch.cuda.OutOfMemoryError``, or a ``RuntimeError`` of
    cuBLAS / cuDNN / the CUDA runtime failing to allocate (their workspaces are not PyTorch's)."""
    import torch

    return isinstance(err, torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and bool(_OUT_OF_MEMORY.search(str(err)))
    )


class InferenceBatches:
    """Runs ``forward(start, stop)`` over ``0..n`` in slices of at most :attr:`size`, halving on CUDA OOM."""

    def __init__(self, size: int, what: str = "items") -> None:
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        self.size = size
        self.what = what
        self.halvings = 0

    def run(self, n: int, forward: Callable[[int, int], np.ndarray]) -> list[np.ndarray]:
        """The outputs of ``forward`` for consecutive slices covering ``0..n``, in order."""
        import torch

        outputs: list[np.ndarray] = []
        start = 0
        while start < n:
            stop = min(n, start + self.size)
            try:
                outputs.append(forward(start, stop))
            except RuntimeError as err:  # OutOfMemoryError is a RuntimeError
                if not is_out_of_memory(err) or stop - start == 1:
                    raise
                self.size = max(1, (stop - start) // 2)
                self.halvings += 1
                log.warning(
                    "CUDA out of memory on a batch of %d %s: retrying with batches of %d",
                    stop - start,
                    self.what,
                    self.size,
                )
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            start = stop
        return outputs

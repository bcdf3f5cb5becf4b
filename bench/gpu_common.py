"""What every section of ``bench/gpu_check.py`` shares: its context (device, size, scratch folder, time left)
and timing that waits for the GPU."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: The models of a full run on a GPU, and of the CPU dry run (``--small``).
FULL_IMAGE_MODEL = "ViT-L-14:random"
FULL_TEXT_MODEL = "ViT-B-32:random"
SMALL_MODEL = "laion-spark-tiny"


@dataclass
class Clock:
    """A section's time budget, counted from its creation."""

    budget_s: float
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since the clock started."""
        return time.perf_counter() - self.started

    def left(self) -> float:
        """Seconds of the budget left (negative once it is spent)."""
        return self.budget_s - self.elapsed()


@dataclass
class Context:
    """What a section runs with: ``device`` (``cuda:N`` or ``cpu``), ``small`` (the CPU dry run's sizes and
    models), a scratch folder of its own and its clock."""

    device: str
    small: bool
    work: Path
    clock: Clock

    @property
    def on_cuda(self) -> bool:
        """Whether the section runs on a CUDA device."""
        return self.device.startswith("cuda")

    @property
    def image_model(self) -> str:
        """The image model spec: ViT-L/14 (random weights) on a GPU, the tiny model in the dry run."""
        return SMALL_MODEL if self.small else FULL_IMAGE_MODEL

    @property
    def text_model(self) -> str:
        """The text model spec: ViT-B/32 (random weights) on a GPU, the tiny model in the dry run."""
        return SMALL_MODEL if self.small else FULL_TEXT_MODEL


def sync(device: str) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU)."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def timed(run: Callable[[], int], device: str) -> tuple[float, int]:
    """(seconds, items) of ``run()``, the device synchronised before and after."""
    sync(device)
    started = time.perf_counter()
    items = run()
    sync(device)
    return time.perf_counter() - started, items


def rate(items: int, seconds: float) -> float:
    """Items per second, rounded to 0.1 (0 for no time)."""
    return round(items / seconds, 1) if seconds > 0 else 0.0

"""Progress of long CLIP runs, logged at INFO on ``laion_spark.clip`` (the CLI prints INFO lines to stderr).

Inside a task, one line per inference chunk: rows done of the tar's rows, images/s so far, and the read,
decode, infer and write seconds of that chunk. On the driver, one line per committed group of tars:
tars and rows done of the run, and images/s since the run started.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger("laion_spark.clip")

STEPS = ("read", "decode", "infer", "write")


@dataclass
class TarProgress:
    """Rows and per-step seconds of one tar, logged chunk by chunk."""

    name: str
    total: int
    done: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEPS, 0.0))
    started: float = field(default_factory=time.perf_counter)

    def chunk(self, rows: int, **steps: float) -> None:
        """Record a chunk of ``rows`` with its step seconds (``read=``, ``decode=``, ``infer=``, ``write=``)."""
        self.done += rows
        for step, value in steps.items():
            self.seconds[step] += value
        rate = self.done / max(time.perf_counter() - self.started, 1e-9)
        times = ", ".join(f"{step} {steps.get(step, 0.0):.2f} s" for step in STEPS)
        log.info("%s: %d/%d rows, %.1f images/s; chunk of %d: %s", self.name, self.done, self.total, rate, rows, times)

    def finished(self, embedded: int, failed: int, write: float) -> None:
        """Record the tar's final write and log its totals."""
        self.seconds["write"] += write
        times = ", ".join(f"{step} {self.seconds[step]:.2f} s" for step in STEPS)
        log.info("%s: done, %d embedded + %d failed rows; %s", self.name, embedded, failed, times)


@dataclass
class RunProgress:
    """Tars and rows of a whole run, logged after each commit."""

    job: str
    tars_total: int
    tars_done: int = 0
    rows_done: int = 0
    started: float = field(default_factory=time.perf_counter)

    def committed(self, tars: int, rows: int) -> None:
        """Record a committed group of ``tars`` holding ``rows`` rows."""
        self.tars_done += tars
        self.rows_done += rows
        rate = self.rows_done / max(time.perf_counter() - self.started, 1e-9)
        log.info(
            "%s: %d/%d tars, %d rows, %.1f images/s", self.job, self.tars_done, self.tars_total, self.rows_done, rate
        )

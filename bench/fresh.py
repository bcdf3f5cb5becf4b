"""Commands timed as a user runs them: a fresh process each, its wall time and its peak memory.

Every side-by-side benchmark runs its contenders through :func:`run_fresh` (the CLI command, and the peer's own
script) and, beside them, in this process (:func:`timed`), repeats interleaved; :func:`table` prints each framing
with the fastest run's ratio and the median of the repeats' own ratios (:func:`paired_ratio`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    """One run: wall seconds, the peak resident memory of the process (MiB; 0 in this process), and (in this
    process) the process's CPU seconds meanwhile, user + system, every thread's: an engine in this process counts."""

    seconds: float
    peak_mib: float = 0.0
    cpu_seconds: float = 0.0


#: Starts the command from a small process and writes its peak resident memory (KiB) to the file ``argv[1]``: a
#: child forked from the benchmark itself would count the benchmark's own memory (``ru_maxrss`` keeps the
#: high-water mark from before ``exec``).
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


#: The environment this benchmark was started with. Fresh processes get it rather than ``os.environ``, which an
#: in-process session changes (:data:`laion_spark.engine.factory.SAIL_ENV`): a peer's script must not run with
#: settings meant for our engine.
_STARTED_WITH = dict(os.environ)


def run_fresh(argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` in a new process, with ``env`` or else the environment the benchmark started with; raises
    ``RuntimeError`` with its output's end when it fails."""
    with tempfile.TemporaryDirectory() as scratch:
        peak = Path(scratch) / "peak"
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(peak), *map(str, argv)],
            cwd=cwd,
            env=_STARTED_WITH if env is None else env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.stdout[-3000:]}")
        return Run(seconds, int(peak.read_text()) / 1024)


def laion_spark(*args: object) -> list[str]:
    """The ``laion-spark`` command line, as this interpreter runs it."""
    return [sys.executable, "-m", "laion_spark", *map(str, args)]


def timed(step: Callable[[], object]) -> Run:
    """Run ``step`` in this process; its wall time and the process's CPU time meanwhile."""
    before, started = os.times(), time.perf_counter()
    step()
    seconds, after = time.perf_counter() - started, os.times()
    return Run(seconds, cpu_seconds=after.user - before.user + after.system - before.system)


def best(runs: Sequence[Run]) -> Run:
    """The fastest run (its own peak memory)."""
    return min(runs, key=lambda run: run.seconds)


def paired_ratio(runs: Sequence[Run], reference: Sequence[Run]) -> float:
    """The median over repeats of ``runs[i]`` / ``reference[i]``: repeat ``i`` of each contender ran back to back,
    so a machine that drifts (a slow hour, another tenant) slows both sides of a pair alike. Raises ``ValueError``
    when the two do not hold the same number of runs."""
    if len(runs) != len(reference) or not runs:
        raise ValueError(f"paired ratios need as many runs on each side: {len(runs)} and {len(reference)}")
    return statistics.median(run.seconds / ref.seconds for run, ref in zip(runs, reference, strict=True))


def table(title: str, rows: Sequence[tuple[str, Sequence[Run]]], reference: str, unit: tuple[str, int]) -> str:
    """A table of ``(name, runs)`` rows, the runs being interleaved repeats: the fastest run's wall time, throughput
    (``unit``: its name and how many) and peak memory, its time as a ratio of the ``reference`` row's fastest
    (below 1: faster than it), and the median of the repeats' paired ratios (:func:`paired_ratio`)."""
    base = dict(rows)[reference]
    fastest = best(base).seconds
    name_width, ratio_width = max(len(name) for name, _ in rows) + 2, len(reference) + 4
    lines = [
        title + f" (best of {len(base)}, interleaved)",
        f"{'':<{name_width}}{'wall s':>9}{unit[0] + '/s':>14}{'x ' + reference:>{ratio_width}}{'peak MiB':>10}"
        f"{'x, median of pairs':>20}",
    ]
    for name, runs in rows:
        run = best(runs)
        memory = f"{run.peak_mib:>10,.0f}" if run.peak_mib else f"{'-':>10}"
        lines.append(
            f"{name:<{name_width}}{run.seconds:>9.2f}{unit[1] / run.seconds:>14,.0f}"
            f"{run.seconds / fastest:>{ratio_width}.2f}{memory}{paired_ratio(runs, base):>20.2f}"
        )
    return "\n".join(lines)

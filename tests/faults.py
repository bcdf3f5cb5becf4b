"""The kill-and-resume harness: run a stage's command in a subprocess and SIGKILL it at a chosen commit.

A *trial* starts from a copy of the reference pipeline run's lake (and its other outputs), runs one
command, and leaves a :class:`Outcome`: what every table it writes holds (row count and an
order-independent checksum of all columns), the bytes of the files it writes, how many commits it made
and how long its first one took. Killing at commit ``k`` means: SIGKILL as soon as ``k`` new commits are
in the lake's ``_delta_log`` folders (``k = 0``: a seeded moment before the first one).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lake_checks import RUN_COLUMNS, digest, read_any

#: Files a writer leaves only while it runs; none may remain after a completed rerun.
SCRATCH = ("*.partial", "*.staging", "*.tmp", "*.part")


@dataclass(frozen=True)
class StageRun:
    """One command that writes: its arguments (given the trial root), the tables and files it writes."""

    name: str
    argv: Callable[[Path], list[str]]
    tables: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    fresh: bool = False  # start without its tables (it creates them), instead of rewriting them
    inside: str | None = None  # a glob (under the root) that exists only while the stage writes: kill point 0


@dataclass
class Outcome:
    tables: dict[str, tuple[int, str]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    commits: int = 0
    first_commit_s: float = 0.0


def commits(lake: Path) -> int:
    return sum(1 for _ in lake.glob("*/_delta_log/*.json"))


def prepare(root: Path, reference: Path, stage: StageRun) -> Path:
    """A trial root: a copy of the reference run (sample linked, not copied), less the stage's outputs if fresh."""
    root.mkdir(parents=True)
    (root / "sample").symlink_to((reference / "sample").resolve())
    for item in reference.iterdir():
        if item.name != "sample":
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, root / item.name)
    if stage.fresh:
        for table in stage.tables:
            shutil.rmtree(root / "lake" / table, ignore_errors=True)
    return root


def run(stage: StageRun, root: Path, kill_at: int | None = None, kill_after_s: float = 0.0) -> subprocess.Popen:
    """Run the stage's command; with ``kill_at``, SIGKILL it at that many new commits.

    ``kill_at=0``: as soon as ``stage.inside`` matches a file when the stage has one, else after ``kill_after_s``.
    """
    lake = root / "lake"
    before = commits(lake)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (root / "trial.log").open("a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "laion_spark", *stage.argv(root)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
    if kill_at is None:
        return proc
    started = time.monotonic()
    while proc.poll() is None:
        done = commits(lake) - before
        if kill_at == 0 and stage.inside:
            due = any(root.glob(stage.inside))
        else:
            due = done >= kill_at if kill_at > 0 else time.monotonic() - started >= kill_after_s
        if due:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    return proc


def complete(stage: StageRun, root: Path) -> Outcome:
    """Run the stage to the end (it must succeed) and describe what it left."""
    lake = root / "lake"
    before, started = commits(lake), time.monotonic()
    proc = run(stage, root)
    first = None
    while proc.poll() is None:
        if first is None and commits(lake) > before:
            first = time.monotonic() - started
        time.sleep(0.002)
    assert proc.returncode == 0, (root / "trial.log").read_text()[-4000:]
    outcome = describe(stage, root)
    outcome.commits = commits(lake) - before
    outcome.first_commit_s = first if first is not None else time.monotonic() - started
    return outcome


def describe(stage: StageRun, root: Path) -> Outcome:
    """What the stage's tables hold and its files' bytes (folders: every file in them)."""
    outcome = Outcome()
    for name in stage.tables:
        table = read_any(root / "lake" / name)
        outcome.tables[name] = digest(table, [c for c in table.column_names if c not in RUN_COLUMNS.get(name, ())])
    for name in stage.files:
        path = root / name
        members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        outcome.files.update({str(p.relative_to(root)): p.read_bytes() for p in members})
    return outcome


def scratch_left(root: Path) -> list[str]:
    """Files or folders a writer leaves only while it runs, anywhere in the trial but the sample."""
    return sorted(
        str(p.relative_to(root))
        for pattern in SCRATCH
        for p in root.rglob(pattern)
        if "sample" not in p.relative_to(root).parts[:1]
    )

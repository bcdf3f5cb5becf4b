"""Crash and resume inside this process: a failure injected at a chosen lake commit, then a rerun.

Every lake commit of every job goes through one function, ``laion_spark.lake.tables._save``. Counting the
calls there gives the commits of an uninterrupted run; raising :class:`InjectedCrash` when commit ``k + 1``
is about to be made leaves the lake as a process killed after its ``k``-th commit leaves it. The command runs
through the real command line (typer's app) on the shared Sail session, so a trial costs what the work costs,
not an interpreter and an engine start. What a real process death adds (a pid that is gone, a file half
written) stays with the SIGKILL harness in :mod:`faults`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults import Outcome, StageRun, describe
from typer.testing import CliRunner

from laion_spark.cli import app
from laion_spark.lake import tables


class InjectedCrash(BaseException):
    """Stands for the process dying: a ``BaseException``, so that no job's ``except Exception`` handles it."""


@dataclass
class Commits:
    """Lake commits made so far; with ``crash_after``, the commit after that many raises :class:`InjectedCrash`."""

    crash_after: int | None = None
    made: int = 0


@contextmanager
def commits(monkeypatch: pytest.MonkeyPatch, crash_after: int | None = None) -> Iterator[Commits]:
    """Count every lake commit made inside the block; crash before commit ``crash_after + 1`` when given."""
    counter = Commits(crash_after)
    save = tables._save

    def counted(writer, path: str) -> None:  # writer: a DataFrameWriter of either API
        if counter.crash_after is not None and counter.made >= counter.crash_after:
            raise InjectedCrash(f"injected after commit {counter.made} ({path})")
        save(writer, path)
        counter.made += 1

    with monkeypatch.context() as patch:
        patch.setattr(tables, "_save", counted)
        yield counter


def invoke(stage: StageRun, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the stage's command line in this process from ``root``; it must succeed."""
    with monkeypatch.context() as patch:
        patch.chdir(root)
        result = CliRunner().invoke(app, stage.argv(root))
    assert result.exit_code == 0, (result.stdout + result.stderr)[-4000:]


def complete(stage: StageRun, root: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """Run the stage to the end and describe what it left, with the number of commits it made."""
    with commits(monkeypatch) as counter:
        invoke(stage, root, monkeypatch)
    outcome = describe(stage, root)
    outcome.commits = counter.made
    return outcome


def crash(stage: StageRun, root: Path, after: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the stage and crash it when it is about to make commit ``after + 1``."""
    with commits(monkeypatch, crash_after=after), pytest.raises(InjectedCrash):
        invoke(stage, root, monkeypatch)

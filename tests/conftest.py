"""Shared fixtures: one Sail session per test run; classic Spark through the CLI in a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from laion_spark.cli.options import EngineChoice
from laion_spark.engine.factory import LakeSession, open_session

os.environ.setdefault("LAION_SPARK_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "laion-aesthetic-predictor"


@pytest.fixture(scope="session")
def sail() -> LakeSession:
    """The embedded Sail engine, writing Delta."""
    lake = open_session("sail")
    yield lake
    lake.stop()


def run_cli(*args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run ``laion-spark ARGS`` in a fresh interpreter.

    Classic Spark (``--engine local``) is always exercised this way: PySpark
    cannot hold a classic and a Spark Connect session in one process.
    """
    env = {**os.environ, "LAION_SPARK_MASTER": "local[2]"}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    proc = subprocess.run(
        [sys.executable, "-m", "laion_spark", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"laion-spark {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def cli_on_sail(sail: LakeSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands invoked in this process (``CliRunner``) run on the shared Sail session instead of starting one."""
    monkeypatch.setattr(EngineChoice, "open", lambda self: contextlib.nullcontext(sail))


@pytest.fixture(scope="session")
def reference() -> Path:
    """LAION's published aesthetic-predictor files, read in place from ../shared."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    return REFERENCE


from pipeline_runs import reference_run, sample  # noqa: E402, F401 - fixtures shared by the pipeline and engine tests

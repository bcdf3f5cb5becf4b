"""Shared fixtures: one Sail session per test run; classic Spark through the CLI in a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from laion_spark.engine import factory
from laion_spark.engine.factory import open_session
from laion_spark.engine.session import LakeSession

pytest_plugins = ["tiers"]  # the fast tier (--fast) and its time budget
os.environ.setdefault("LAION_SPARK_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset imports it; no update check over the network

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "laion-aesthetic-predictor"


@pytest.fixture(scope="session")
def sail() -> LakeSession:
    """The embedded Sail engine, writing Delta."""
    lake = open_session("sail")
    yield lake
    lake.stop()


def classic_env(master: str = "local[2]", **extra: str) -> dict[str, str]:
    """This process's environment for a classic-Spark subprocess on ``master``, with ``extra`` added: without the
    Spark Connect switch that a test session may carry (PySpark cannot hold both kinds of session in one process)."""
    env = {**os.environ, "LAION_SPARK_MASTER": master, **extra}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    return env


def run_cli(*args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run ``laion-spark ARGS`` in a fresh interpreter.

    Classic Spark (``--engine local``) is always exercised this way: PySpark
    cannot hold a classic and a Spark Connect session in one process.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "laion_spark", *args], capture_output=True, text=True, env=classic_env(), timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"laion-spark {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def cli_on_sail(sail: LakeSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands invoked in this process (``CliRunner``) run on the shared Sail session instead of starting one.

    Only the server start is replaced: the engine options are checked as a real run checks them, the profiles'
    settings are applied to the shared session and restored when the command's session closes.
    """
    _share_sail(sail, monkeypatch)


@pytest.fixture(scope="module")
def cli_on_sail_module(sail: LakeSession) -> pytest.MonkeyPatch:
    """:func:`cli_on_sail` for a whole module; yields its ``MonkeyPatch`` (for ``.context()`` patches)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _share_sail(sail, monkeypatch)
        yield monkeypatch


def _share_sail(sail: LakeSession, monkeypatch: pytest.MonkeyPatch) -> None:
    def shared(settings: dict[str, str], table_format: str) -> LakeSession:
        conf = sail.spark.conf
        before = {key: conf.get(key, None) for key in settings}
        lake = LakeSession(
            sail.spark, "sail", table_format, [lambda: _restore(conf, before)],
            delta_writer_features=sail.delta_writer_features,
        )  # fmt: skip
        return factory._apply_conf(lake, settings)

    monkeypatch.setattr(factory, "_sail", shared)


def _restore(conf, values: dict[str, str | None]) -> None:  # conf: a RuntimeConfig of either API
    for key, value in values.items():
        with contextlib.suppress(Exception):
            conf.set(key, value) if value is not None else conf.unset(key)


@pytest.fixture(scope="session")
def reference() -> Path:
    """LAION's published aesthetic-predictor files, read in place from ../shared."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def umap_compiled() -> None:
    """umap-learn's numba functions compiled in this process by a tiny fit (20-70 s on the 2-core VM, paid once per
    process): a test whose fit would be the first is not charged for what every later fit reuses."""
    import numpy as np

    from laion_spark.umap import UmapLearnBackend, UmapParams

    rows = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    UmapLearnBackend().fit(rows, UmapParams(n_neighbors=5, n_epochs=5, random_state=0))


from cluster import standalone  # noqa: E402, F401 - one standalone Spark cluster per session, for the tests that need one
from installs import dist  # noqa: E402, F401 - make dist's artefacts, built once
from pipeline_runs import classic_run, reference_run, sample  # noqa: E402, F401 - fixtures shared by the pipeline and engine tests

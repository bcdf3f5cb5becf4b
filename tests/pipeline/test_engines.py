"""The whole pipeline for real on every way users run it, and the same tables from each.

* pyspark's own ``spark-submit`` on ``local[2]`` runs ``jobs/pipeline.py`` (``--engine active``) with the
  package from ``make dist`` (``--py-files``, an interpreter that has no laion_spark of its own) and Delta
  from the pinned coordinate (``--packages``): the shared classic run (``pipeline_runs.classic_run``);
* ``--engine remote`` against a Spark Connect server in its own process: Sail's (``sail spark server``)
  and classic Spark's (its Connect server jar ships in the pyspark wheel; Delta through ``--packages``);
* Sail in ``local-cluster`` mode (a driver and workers talking over RPC);

each compared with the uninterrupted Sail/Delta run (``reference_run``): row counts and an
order-independent checksum of every column, table by table, and the KV files byte for byte. Every classic
Spark run here writes Delta (``--table-format parquet`` stays an option, for machines without the jars).
The standalone-cluster run is in ``test_cluster.py``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO
from installs import clean_env
from lake_checks import assert_same_run
from pipeline_runs import DELTA_SUBMIT, SPARK_HOME, SPARK_SUBMIT, rooted

from laion_spark.engine.factory import SAIL_ENV


def run_pipeline_cli(config: Path, *engine: str, env: dict[str, str] | None = None) -> str:
    args = [sys.executable, "-m", "laion_spark", "pipeline", "--config", str(config), *engine]
    proc = subprocess.run(args, capture_output=True, text=True, env=env or clean_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(args: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    """A Spark Connect server in its own process, until the block ends; yields its ``sc://`` URL."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no server on port {port}: {log.read_text()[-3000:]}")
        yield f"sc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.mark.classic
@pytest.mark.dist
def test_spark_submit_runs_jobs_pipeline_with_the_package_from_make_dist(classic_run, reference_run) -> None:
    """The shared classic run (``classic_run``) is this spark-submit: one classic pipeline run serves the per-stage
    parity tests, the odd-root test and this one."""
    assert_same_run(classic_run, reference_run)


@pytest.mark.slow
def test_remote_engine_against_sails_own_spark_connect_server(sample, reference_run, tmp_path) -> None:
    port = free_port()
    command = [str(Path(sys.executable).parent / "sail"), "spark", "server", "--port", str(port)]
    with server(command, port, clean_env(**SAIL_ENV), tmp_path / "sail.log") as url:
        run_pipeline_cli(rooted(tmp_path / "run", sample), "--engine", "remote", "--remote", url)
    assert_same_run(tmp_path / "run", reference_run)


@pytest.mark.classic
def test_remote_engine_against_classic_sparks_connect_server(sample, reference_run, tmp_path) -> None:
    port = free_port()
    jar = next((SPARK_HOME / "jars").glob("spark-connect_*.jar"))
    command = [
        str(SPARK_SUBMIT),
        "--master", "local[2]",
        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
        *DELTA_SUBMIT,
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.ui.enabled=false",
        str(jar),
    ]  # fmt: skip
    # The server's Python workers unpickle the client's functions: both import this checkout's laion_spark.
    env = clean_env(PYSPARK_PYTHON=sys.executable, SPARK_HOME=str(SPARK_HOME), PYTHONPATH=str(REPO))
    with server(command, port, env, tmp_path / "connect.log") as url:
        run_pipeline_cli(rooted(tmp_path / "run", sample), "--engine", "remote", "--remote", url, env=env)
    assert_same_run(tmp_path / "run", reference_run)


@pytest.mark.slow
def test_sail_in_local_cluster_mode_gives_the_same_tables(sample, reference_run, tmp_path) -> None:
    run_pipeline_cli(rooted(tmp_path / "run", sample), env=clean_env(SAIL_MODE="local-cluster"))
    assert_same_run(tmp_path / "run", reference_run)

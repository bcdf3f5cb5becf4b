"""The whole pipeline for real on every way users run it, and the same tables from each.

* pyspark's own ``spark-submit`` on ``local[2]`` runs ``jobs/pipeline.py`` (``--engine active``) with the
  package from ``make dist`` (``--py-files``, an interpreter that has no laion_spark of its own) and Delta
  from the pinned coordinate (``--packages``);
* ``--engine remote`` against a Spark Connect server in its own process: Sail's (``sail spark server``)
  and classic Spark's (its Connect server jar ships in the pyspark wheel; Delta through ``--packages``);
* Sail in ``local-cluster`` mode (a driver and workers talking over RPC);

each compared with the uninterrupted Sail/Delta run (``reference_run``): row counts and an
order-independent checksum of every column, table by table, and the KV files byte for byte. Every classic
Spark run here writes Delta (``--table-format parquet`` stays an option, for machines without the jars).
The standalone-cluster run is in ``test_cluster.py``.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import REPO
from installs import clean_env, deps_venv
from lake_checks import assert_same_run
from pipeline_runs import rooted

from laion_spark.engine import delta_coordinate
from laion_spark.engine.factory import SAIL_ENV

SPARK_HOME = Path(importlib.util.find_spec("pyspark").submodule_search_locations[0])
#: spark-submit's arguments for one machine with Delta: the local profile (as users pass it), the pinned package and
#: delta-spark's session settings.
DELTA_SUBMIT = [
    "--properties-file", str(REPO / "conf" / "local.conf"),
    "--packages", delta_coordinate(),
    "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
    "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
]  # fmt: skip


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
def test_spark_submit_runs_jobs_pipeline_with_the_package_from_make_dist(sample, reference_run, dist, tmp_path) -> None:
    _, zipped = dist
    python = deps_venv(tmp_path / "venv")  # sees the dependencies, not laion_spark: the zip must provide it
    config = rooted(tmp_path / "run", sample)
    env = clean_env(PYSPARK_PYTHON=str(python), PYSPARK_DRIVER_PYTHON=str(python), SPARK_HOME=str(SPARK_HOME))
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "spark-submit"),
            "--master", "local[2]",
            *DELTA_SUBMIT,
            "--conf", "spark.ui.enabled=false",
            "--py-files", str(zipped),
            str(REPO / "jobs" / "pipeline.py"),
            "--config", str(config),
        ],
        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "report" in proc.stdout.split("pipeline over")[1]
    assert_same_run(tmp_path / "run", reference_run)


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
        str(Path(sys.executable).parent / "spark-submit"),
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

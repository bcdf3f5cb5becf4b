"""A Spark standalone cluster on this machine, started from the pyspark wheel: a master and two workers, each its
own JVM (``spark-class org.apache.spark.deploy.master.Master`` / ``...worker.Worker``) on 127.0.0.1, one core each.

One cluster per test session (:func:`standalone`); its logs and the workers' folders (each executor's stdout and
stderr) stay under the session's temporary folder. Also here: what a Spark event log says about tasks.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SPARK_HOME = Path(importlib.util.find_spec("pyspark").submodule_search_locations[0])
WORKERS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, timeout: float = 10) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class Cluster:
    """A running standalone cluster: its ``spark://`` URL, its master's web UI and its daemons."""

    url: str
    ui: str
    folder: Path
    daemons: list[subprocess.Popen] = field(default_factory=list)

    def workers(self) -> list[dict]:
        return [w for w in get_json(f"{self.ui}/json/")["workers"] if w["state"] == "ALIVE"]

    def stop(self) -> None:
        for proc in reversed(self.daemons):
            proc.terminate()
        for proc in self.daemons:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def daemon_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPARK_CONNECT_MODE_ENABLED")}
    return {
        **env,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "512m",
        "SPARK_LOG_DIR": str(folder / "logs"),
    }


def start_cluster(folder: Path) -> Cluster:
    """Start the master and :data:`WORKERS` workers; return once every worker is registered."""
    folder.mkdir(parents=True, exist_ok=True)
    port, ui = free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}", folder)
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    env = daemon_env(folder)

    def launch(name: str, *args: str) -> None:
        with (folder / f"{name}.log").open("w") as log:
            cluster.daemons.append(
                subprocess.Popen([spark_class, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
            )

    launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
           "--webui-port", str(ui))  # fmt: skip
    for i in range(WORKERS):
        work = folder / f"worker-{i}"
        launch(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
               "--memory", "3g", "--webui-port", str(free_port()), "--work-dir", str(work), cluster.url)  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for proc in cluster.daemons:
            if proc.poll() is not None:
                cluster.stop()
                raise AssertionError(f"a cluster daemon exited: {_tails(folder)}")
        try:
            if len(cluster.workers()) == WORKERS:
                return cluster
        except OSError:
            pass
        time.sleep(1)
    cluster.stop()
    raise AssertionError(f"the workers did not register in time: {_tails(folder)}")


def _tails(folder: Path) -> str:
    return "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in sorted(folder.glob("*.log")))


@pytest.fixture(scope="session")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One standalone cluster (a master, two one-core workers, each its own JVM) for every test that needs one."""
    cluster = start_cluster(tmp_path_factory.mktemp("standalone"))
    yield cluster
    cluster.stop()


def executor_pids(app_id: str) -> dict[str, int]:
    """``{executor id: pid}`` of the executor JVMs of ``app_id`` on this machine (``CoarseGrainedExecutorBackend``)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            words = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "org.apache.spark.executor.CoarseGrainedExecutorBackend" in words and app_id in words:
            found[words[words.index("--executor-id") + 1]] = int(proc.name)
    return found


def kill_executor(app_id: str, executor: str) -> int:
    """SIGKILL one executor JVM of ``app_id``; returns its pid."""
    pid = executor_pids(app_id)[executor]
    os.kill(pid, signal.SIGKILL)
    return pid


@dataclass
class EventLog:
    """The events of one application's Spark event log (one JSON object per line)."""

    events: list[dict]

    @classmethod
    def read(cls, folder: Path) -> EventLog:
        """The one application's log under ``folder`` (uncompressed; a rolling log's files in order)."""
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        assert files, f"no event log under {folder}"
        return cls([json.loads(line) for path in files for line in path.read_text().splitlines() if line.strip()])

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["Event"] == kind]

    def executions(self, match: Callable[[str, str], bool]) -> set[str]:
        """Ids of the SQL executions whose description and a physical plan (the first or an adaptive one) ``match``."""
        texts: dict[str, str] = {}
        plans: dict[str, list[str]] = {}
        for event in self.events:
            if event["Event"].endswith(("SparkListenerSQLExecutionStart", "SparkListenerSQLAdaptiveExecutionUpdate")):
                key = str(event["executionId"])
                texts[key] = texts.get(key, "") + event.get("description", "")
                plans.setdefault(key, []).append(event.get("physicalPlanDescription", ""))
        return {key for key, versions in plans.items() if any(match(texts[key], plan) for plan in versions)}

    def stages_of(self, executions: set[str]) -> set[int]:
        """Stages of the jobs that ran for ``executions``."""
        stages: set[int] = set()
        for job in self.of("SparkListenerJobStart"):
            if (job.get("Properties") or {}).get("spark.sql.execution.id") in executions:
                stages.update(job["Stage IDs"])
        return stages

    def workers(self) -> dict[str, str]:
        """``{executor id: its worker's address}`` (the worker serves the executor's logs)."""
        return {
            e["Executor ID"]: e["Executor Info"]["Log Urls"]["stderr"].split("/logPage")[0]
            for e in self.of("SparkListenerExecutorAdded")
        }

    def tasks(self, stages: set[int] | None = None) -> list[dict]:
        """Task end events (``Task Info``, ``Task End Reason``, accumulables) of ``stages`` (default: all)."""
        return [e for e in self.of("SparkListenerTaskEnd") if stages is None or e["Stage ID"] in stages]


def ran_python(task: dict) -> bool:
    """Whether a task fed rows to a Python worker (the Python UDF operators' SQL metrics say so)."""
    names = {a.get("Name", "") for a in task["Task Info"].get("Accumulables", [])}
    return any("Python" in name for name in names)

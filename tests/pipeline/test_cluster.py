"""The whole pipeline on a real multi-process Spark cluster: a standalone master and two one-core workers, each its
own JVM (``tests/cluster.py``), through ``spark-submit --master spark://...`` with the Delta package, ``make dist``'s
zip and the executors' Python from a virtualenv that has the dependencies but not laion_spark.

In the middle of the ``images`` stage (while a ``score-images`` task runs) one executor JVM is SIGKILLed: Spark
reruns its tasks elsewhere, and the tables equal the uninterrupted run's (counts, order-independent checksums of
every column, the KV files byte for byte): nothing lost, nothing doubled. The Spark event log shows the lost
task, its rerun, and that every task of the UDF stages (CLIP inference on images, CLIP text embeddings and the
UMAP transform, which loads the fitted models from the lake) ran in an executor, on both workers.

A second run fits UMAP on 50,000 rows (LAION's n_neighbors 30 and 60) and transforms the rest on the same cluster: the
models reach the tasks as files, so models larger than a Spark Connect plan carries (about 170 MiB here) no longer
matter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from cluster import EventLog, free_port, get_json, kill_executor, ran_python
from conftest import REPO
from installs import clean_env, deps_venv
from lake_checks import assert_same_run
from pipeline_runs import DELTA, SPARK_SUBMIT, rooted

pytestmark = [pytest.mark.classic, pytest.mark.slow, pytest.mark.dist]


def submit_command(cluster, zipped: Path, python: Path, events: Path, ui_port: int, job: str, *args: str) -> list[str]:
    """``spark-submit`` of ``jobs/JOB.py`` to the standalone cluster, with Delta from the pinned coordinate."""
    return [
        str(SPARK_SUBMIT),
        "--master", cluster.url,
        *DELTA,
        "--driver-memory", "2g",
        "--conf", "spark.executor.cores=1",
        "--conf", "spark.executor.memory=1500m",
        "--conf", "spark.cores.max=2",
        "--conf", "spark.databricks.delta.snapshotPartitions=2",
        "--conf", f"spark.pyspark.python={python}",
        "--conf", "spark.ui.enabled=true",
        "--conf", f"spark.ui.port={ui_port}",
        "--conf", "spark.ui.showConsoleProgress=false",
        "--conf", "spark.eventLog.enabled=true",
        "--conf", f"spark.eventLog.dir=file://{events}",
        "--conf", "spark.eventLog.compress=false",
        "--conf", "spark.eventLog.rolling.enabled=false",
        "--py-files", str(zipped),
        str(REPO / "jobs" / f"{job}.py"),
        *args,
    ]  # fmt: skip


class Watch:
    """Reads a process's stdout into ``lines`` as it comes."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def kill_during_images(proc: subprocess.Popen, watch: Watch, ui: str) -> dict:
    """Once the ``images`` stage runs, SIGKILL the executor of a running task of the CLIP inference stage.

    Each poll asks the driver's REST API for the active stages, then for the inference stage's tasks: the
    executor is the one a running task is in. The stage lasts a few seconds, so each request has a short
    timeout (a slow answer must not use up the window), and a failure says what every poll saw.
    """
    while proc.poll() is None and not watch.saw("-> images"):
        time.sleep(0.2)
    [app] = get_json(f"{ui}/api/v1/applications")
    api = f"{ui}/api/v1/applications/{app['id']}"
    seen: Counter[str] = Counter()
    while proc.poll() is None and not watch.saw("-> join"):
        try:
            stages = get_json(f"{api}/stages?status=active", timeout=2)
            inference = [s for s in stages if "clip" in s.get("name", "") + s.get("details", "")]
            running = [
                task
                for stage in inference
                for task in get_json(f"{api}/stages/{stage['stageId']}/{stage['attemptId']}/taskList", timeout=2)
                if task["status"] == "RUNNING"
            ]
        except OSError as err:
            seen[f"REST error {type(err).__name__}"] += 1
            time.sleep(0.1)
            continue
        if running:
            time.sleep(0.5)  # well inside the task: its Python worker has started on the tar
            executor = running[0]["executorId"]
            pid = kill_executor(app["id"], executor)
            return {"app": app["id"], "executor": executor, "pid": pid, "stage": inference[0]["name"]}
        seen["inference stage active, no task running" if inference else "no inference stage active"] += 1
        time.sleep(0.1)
    raise AssertionError(f"no CLIP inference task was seen running during the images stage; polls: {dict(seen)}")


def test_the_whole_pipeline_on_a_standalone_cluster_loses_an_executor_and_nothing_else(
    standalone, sample, reference_run, dist, tmp_path
) -> None:
    """Guard: every stage's commit is idempotent under Spark's task retries (a rerun task rewrites staged rows
    and the ledgers, never appends twice), and UDFs ship with the job (zip, executors' Python, models as files)."""
    _, zipped = dist
    python = deps_venv(tmp_path / "venv")
    config = rooted(tmp_path / "run", sample)
    events = tmp_path / "events"
    events.mkdir()
    ui_port = free_port()
    env = clean_env(PYSPARK_PYTHON=str(python), PYSPARK_DRIVER_PYTHON=str(python), SPARK_LOCAL_IP="127.0.0.1")
    command = submit_command(standalone, zipped, python, events, ui_port, "pipeline", "--config", str(config))
    started = time.monotonic()
    with (tmp_path / "driver.log").open("w") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=tmp_path)
    watch = Watch(proc)
    try:
        killed = kill_during_images(proc, watch, f"http://127.0.0.1:{ui_port}")
        proc.wait(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
    watch.thread.join(timeout=10)
    took = time.monotonic() - started
    assert proc.returncode == 0, "".join(watch.lines)[-3000:] + (tmp_path / "driver.log").read_text()[-3000:]
    assert "report" in "".join(watch.lines).split("pipeline over")[1]
    assert_same_run(tmp_path / "run", reference_run)

    log = EventLog.read(events)
    lost = [t for t in log.tasks() if t["Task End Reason"]["Reason"] == "ExecutorLostFailure"]
    assert lost and {t["Task Info"]["Executor ID"] for t in lost} == {killed["executor"]}, lost
    for task in lost:  # each lost task ran again, to success, in another executor
        reruns = [
            t for t in log.tasks({task["Stage ID"]})
            if t["Task Info"]["Index"] == task["Task Info"]["Index"] and t["Task End Reason"]["Reason"] == "Success"
        ]  # fmt: skip
        assert reruns and all(t["Task Info"]["Executor ID"] != killed["executor"] for t in reruns), task
    # The UDF stages, found by their SQL plans: CLIP inference on the tars (collect in clip/job.py); UMAP's CLIP
    # text embedding and projection of the fit rows (toArrow in umap/job.py); the write of umap, whose plan embeds
    # and projects the other rows and transforms them with the models loaded from the lake (three MapInArrow).
    report, stages = {}, {}
    for name, executions in (
        ("score-images", log.executions(lambda text, plan: "clip/job.py" in text and "MapInArrow" in plan)),
        ("embed-text", log.executions(lambda text, plan: "umap/job.py" in text and "lake/umap_sample" in plan)),
        ("umap-transform", log.executions(lambda text, plan: text.startswith("save") and "lake/umap_sample" in plan
                                          and plan.count("MapInArrow (") >= 3)),
    ):  # fmt: skip
        stages[name] = log.stages_of(executions)
        udf_tasks = [t for t in log.tasks(stages[name]) if ran_python(t)]
        executors = {t["Task Info"]["Executor ID"] for t in udf_tasks}
        assert executions and udf_tasks and "driver" not in executors, name
        report[name] = sorted(executors)
    # The killed executor was inside a CLIP inference task (one of its lost tasks is of score-images): with the
    # executors that completed UDF tasks, at least two ran Python. The survivor may have run every other task,
    # when the killed executor's replacement registered late (CI under load).
    assert {t["Stage ID"] for t in lost} & stages["score-images"], lost
    hosts = {t["Task Info"]["Host"] for t in log.tasks()}
    assert len({killed["executor"], *(e for ids in report.values() for e in ids)}) >= 2 and hosts == {"127.0.0.1"}
    workers = log.workers()  # executor -> its worker's web UI address
    assert len(set(workers.values())) == 2
    reran = sorted(
        {
            f"{t['Task Info']['Executor ID']}@{workers[t['Task Info']['Executor ID']]}"
            for t in log.tasks()
            if t["Task Info"]["Index"] in {x["Task Info"]["Index"] for x in lost}
            and t["Stage ID"] in {x["Stage ID"] for x in lost}
            and t["Task End Reason"]["Reason"] == "Success"
        }
    )
    print(
        f"cluster pipeline: {took:.0f} s; killed executor {killed['executor']}@{workers[killed['executor']]} "
        f"(pid {killed['pid']}, stage {killed['stage']!r}); lost tasks reran in {reran}; UDF tasks ran in {report}"
    )


def test_a_umap_fit_with_models_over_128_mib_is_transformed_in_the_clusters_tasks_from_model_files(
    standalone, sail, dist, tmp_path
) -> None:
    """Guard: the fitted models reach the tasks as files under the lake (umap/models.py); carried inside the plan,
    two 100k-row layouts (about 95 MB each) were refused (the old check allowed about 35k fit rows for three). The
    size of a model grows with rows and n_neighbors: 50k rows at n_neighbors 30 and 60 make 67 + 105 MiB, as 100k
    rows at 15 and 30 did (96 + 134 MiB), in half the fit time (numba compiling umap-learn and pynndescent, about
    70 s, is most of the first fit)."""
    sys.path.insert(0, str(REPO / "tests" / "umap"))
    from umap_data import make_subset

    from laion_spark.lake.tables import write_table

    _, zipped = dist
    python = deps_venv(tmp_path / "venv")
    lake = tmp_path / "lake"
    rows, fit_rows = 55_000, 50_000
    write_table(sail, sail.spark.createDataFrame(make_subset(rows, seed=21)), lake / "umap_sample", mode="overwrite")
    events = tmp_path / "events"
    events.mkdir()
    env = clean_env(PYSPARK_PYTHON=str(python), PYSPARK_DRIVER_PYTHON=str(python), SPARK_LOCAL_IP="127.0.0.1")
    args = ["--lake", str(lake), "--model", "laion-spark-tiny", "--neighbors", "30,60", "--epochs", "5",
            "--fit-rows", str(fit_rows), "--backend", "umap-learn", "--renders", str(tmp_path / "renders")]  # fmt: skip
    command = submit_command(standalone, zipped, python, events, free_port(), "umap", *args)
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    models = sorted((lake / "_umap_models").glob("nn*.pkl"))
    manifests = [json.loads(m.with_suffix(".json").read_text()) for m in models]
    assert [m["n_neighbors"] for m in manifests] == [30, 60] and {m["fit_rows"] for m in manifests} == {fit_rows}
    size = sum(m["bytes"] for m in manifests)
    assert size > 128 * 2**20  # more than one Spark Connect plan carries (the old closure path refused this)
    from deltalake import DeltaTable

    table = DeltaTable(str(lake / "umap")).to_pyarrow_table()
    assert table.num_rows == rows and table.column("x_nn30").null_count == table.column("y_nn60").null_count == 0
    log = EventLog.read(events)
    udf = [t for t in log.tasks() if ran_python(t)]
    assert udf and "driver" not in {t["Task Info"]["Executor ID"] for t in udf}
    print(f"umap on the cluster, {fit_rows:,} fit rows + {rows - fit_rows:,} transformed: {took:.0f} s, "
          f"two models, {size / 2**20:.0f} MiB")  # fmt: skip

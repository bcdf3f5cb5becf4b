"""Engine factory: both engines compute the same thing; Delta from Sail reads back independently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import deltalake
import pytest
from conftest import classic_env, run_cli

from laion_spark.engine import EngineError, open_session, read_profile, resolve_conf
from laion_spark.engine.factory import SAIL_ENV
from laion_spark.lake.doctor import check_engine
from laion_spark.lake.tables import read_table, table_exists, write_table


@pytest.mark.classic
def test_dataframe_and_table_round_trip_is_equal_on_sail_and_local(sail, tmp_path):
    on_sail = check_engine(sail, tmp_path)
    on_local = json.loads(run_cli("doctor", "--engine", "local", "--json").stdout)
    assert on_sail["table_format"] == on_local["table_format"] == "delta"
    assert on_local["engine"] == "local"
    for key in ("aggregate", "table_rows", "table_id_sum"):
        assert on_sail[key] == on_local[key], key
    assert on_sail["table_rows"] == 100_000


#: What the driver JVM of ``--engine local`` reports for the JIT options of ``conf/local.conf``, as JSON.
_JIT_OPTIONS = """
import json
from laion_spark.engine import open_session
jvm = open_session("local").spark._jvm
diagnostics = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
    jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
)
print(json.dumps({name: diagnostics.getVMOption(name).getValue() for name in ("TieredStopAtLevel", "ReservedCodeCacheSize")}))
"""


@pytest.mark.classic
def test_the_local_profiles_jit_options_reach_the_driver_jvm():
    # A JVM option is static: only the launcher applies it, and a key it does not pass on is silently ignored.
    proc = subprocess.run(
        [sys.executable, "-c", _JIT_OPTIONS], capture_output=True, text=True, env=classic_env(), timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    options = json.loads(proc.stdout.strip().splitlines()[-1])
    assert options == {"TieredStopAtLevel": "1", "ReservedCodeCacheSize": str(240 * 1024 * 1024)}


def test_delta_written_on_sail_reads_back_with_deltalake(sail, tmp_path):
    df = sail.spark.range(500).selectExpr("id", "cast(id * 0.5 as float) as aesthetic", "cast(id % 3 as string) as c")
    write_table(sail, df, tmp_path / "t", partition_by=["c"], mode="overwrite")
    table = deltalake.DeltaTable(str(tmp_path / "t")).to_pyarrow_table()
    assert table.num_rows == 500
    assert sorted(table.column("id").to_pylist()) == list(range(500))
    assert sorted(table.column("aesthetic").to_pylist()) == [i * 0.5 for i in range(500)]


def test_replace_partition_keeps_other_partitions_on_sail(sail, tmp_path):
    path = tmp_path / "p"
    first = sail.spark.createDataFrame([(1, "a"), (2, "b")], "id long, c string")
    write_table(sail, first, path, partition_by=["c"], replace_partition={"c": "a"})
    again = sail.spark.createDataFrame([(3, "a")], "id long, c string")
    write_table(sail, again, path, partition_by=["c"], replace_partition={"c": "a"})
    assert sorted(tuple(r) for r in read_table(sail, path).select("id", "c").collect()) == [(2, "b"), (3, "a")]


def test_read_table_names_the_missing_path(sail, tmp_path):
    assert not table_exists(sail, tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="nothing"):
        read_table(sail, tmp_path / "nothing")


def test_unknown_engine_is_refused_with_the_choices():
    with pytest.raises(EngineError, match="sail, local, remote, active"):
        open_session("spark")


def test_remote_engine_requires_a_url():
    with pytest.raises(EngineError, match="sc://"):
        open_session("remote")


def test_profiles_merge_base_engine_and_overrides():
    merged = resolve_conf("local", ["cluster"], {"spark.sql.shuffle.partitions": "3"})
    assert merged["spark.sql.session.timeZone"] == "UTC"  # base profile
    assert merged["spark.ui.enabled"] == "false"  # engine profile
    assert merged["spark.databricks.delta.snapshotPartitions"] == "8"  # one machine: not Delta's 50 (Engine notes)
    assert merged["spark.sql.files.maxPartitionBytes"] == "256m"  # extra profile
    assert merged["spark.sql.shuffle.partitions"] == "3"  # override wins


def test_profile_with_a_malformed_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("spark.a 1\njustakey\n")
    with pytest.raises(EngineError, match=r"bad.conf:2"):
        read_profile(bad)


def test_settings_the_engine_cannot_apply_are_named_in_a_warning_not_dropped(tmp_path):
    profile = tmp_path / "static.conf"
    profile.write_text("spark.serializer org.apache.spark.serializer.KryoSerializer\n")
    proc = run_cli(
        "doctor", "--json", "--conf", "spark.driver.memory=4g", "--conf", "spark.sql.shuffle.partitions=3",
        "--profile", str(profile),
    )  # fmt: skip
    result = json.loads(proc.stdout)
    assert result["table_rows"] == 100_000
    assert result["unapplied"] == {
        "spark.driver.memory": "4g",
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    }
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "engine sail did not apply" in warning[0]
    assert "spark.driver.memory=4g" in warning[0] and "spark.sql.shuffle.partitions" not in warning[0]


@pytest.mark.parametrize(
    ("profile", "keys"),
    [
        ("local", ["spark.driver.memory"]),
        ("cluster", ["spark.executor.memoryOverhead", "spark.sql.extensions", "spark.python.worker.reuse"]),
        (
            "rapids",
            [
                "spark.plugins",
                "spark.executor.resource.gpu.discoveryScript",
                "spark.executor.resource.gpu.amount",
                "spark.task.resource.gpu.amount",
                "spark.python.worker.reuse",
                "spark.sql.execution.arrow.maxRecordsPerBatch",
                "spark.rapids.memory.pinnedPool.size",
            ],
        ),
        ("databricks", ["spark.databricks.delta.optimizeWrite.enabled"]),
    ],
)
def test_every_shipped_profile_parses_and_sets_what_it_is_for(profile, keys):
    settings = read_profile(profile)
    assert set(keys) <= set(settings)
    if profile == "rapids":
        assert settings["spark.plugins"] == "com.nvidia.spark.SQLPlugin"


_HUGE_PAGE_ADVICE = """
import json, os
from laion_spark.engine import open_session
lake = open_session("sail")
lake.spark.range(1_000_000).selectExpr("sum(id)").collect()
with open("/proc/self/smaps") as smaps:
    advised = sum(1 for line in smaps if line.startswith("VmFlags:") and " hg" in line)
print(json.dumps({"env": os.environ.get("MIMALLOC_ALLOW_THP"), "advised": advised}))
"""


def _fresh_sessions(script: str, *envs: dict[str, str], args: tuple[str, ...] = ()) -> list[dict[str, object]]:
    """``script`` in fresh processes side by side, one per environment (added to this one's, less ``SAIL_ENV``, so
    the factory sets its values unless an environment does); each one's last line of output as JSON."""
    base = {k: v for k, v in os.environ.items() if k not in SAIL_ENV}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env in envs
    ]
    seen = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        seen.append(json.loads(out.splitlines()[-1]))
    return seen


def _huge_page_advice(**env: str) -> dict[str, object]:
    """A fresh process's Sail session: ``MIMALLOC_ALLOW_THP`` as the engine saw it, and how many of its mappings are
    advised ``MADV_HUGEPAGE`` (``hg`` in ``/proc/self/smaps``) after a query."""
    return _fresh_sessions(_HUGE_PAGE_ADVICE, env)[0]


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_sails_allocator_asks_for_no_transparent_huge_pages_unless_the_user_says_so():
    assert _huge_page_advice() == {"env": "0", "advised": 0}
    users_choice = _huge_page_advice(MIMALLOC_ALLOW_THP="1")
    assert users_choice["env"] == "1"
    if "[never]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text():
        assert users_choice["advised"] > 0, "mimalloc advised no huge pages: the check above proves nothing here"


_IDLE_SESSION = """
import json, os, sys, time
from laion_spark.engine import open_session
lake = open_session("sail")
lake.spark.range(3).count()
time.sleep(float(sys.argv[1]))
try:
    after = lake.spark.range(3).count()
except Exception as error:
    after = str(error).splitlines()[0]
print(json.dumps({"env": os.environ.get("SAIL_SPARK__SESSION_TIMEOUT_SECS"), "after_idle": after}))
"""


def test_the_in_process_session_outlives_any_idle_pause_unless_the_user_sets_a_timeout():
    """Sail drops a session idle for its ``spark.session_timeout_secs`` (900 s by default): a driver-side UMAP fit or a
    quarter hour between stages would lose the embedded session. The factory sets a year; a user's value wins, and a
    short one shows the variable is the knob Sail reads (were it renamed, the session below would survive)."""
    ours, users_choice = _fresh_sessions(_IDLE_SESSION, {}, {"SAIL_SPARK__SESSION_TIMEOUT_SECS": "1"}, args=("3",))
    assert ours == {"env": SAIL_ENV["SAIL_SPARK__SESSION_TIMEOUT_SECS"], "after_idle": 3}
    assert int(ours["env"]) >= 365 * 24 * 3600
    assert users_choice["env"] == "1"
    assert "is not running" in str(users_choice["after_idle"])

"""Delta on classic Spark starts from the pinned coordinate: downloaded once, then from the cache with no network;
no network and no cache is one line naming the jars and the ``--delta-jars`` way out; ``--delta-jars`` runs air-gapped.

"No network" is real: the command runs in a network namespace of its own (``unshare -n``) that has only a loopback
interface, so neither Maven Central nor any other host can be reached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from conftest import classic_env

from laion_spark.engine.jars import DELTA_KEYS, cached_jar, jar_name, pinned

pytestmark = pytest.mark.classic


#: The classic environment of these checks: one core, bound to the loopback (``unshare -n`` leaves nothing else).
one_core_env = partial(classic_env, "local[1]", SPARK_LOCAL_IP="127.0.0.1")


def offline(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``laion-spark ARGS`` in a network namespace with a loopback interface and nothing else."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("unshare -n does not work here: the offline checks need root (CI runs as root)")
        pytest.skip("unshare -n needs root")
    command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    command += [sys.executable, "-m", "laion_spark", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def test_a_started_machine_resolves_delta_from_the_cache_with_no_network_at_all() -> None:
    """Guard: the local engine resolves the pinned coordinate from Spark's Ivy cache (ensure_delta_cached finds the
    jars and starts no resolver run; Ivy copies nothing): a cached machine needs no network to write Delta."""
    coordinates = [pinned()[key] for key in DELTA_KEYS]
    if not all(cached_jar(c, {}) for c in coordinates):  # the first resolution on this machine, with network
        subprocess.run(
            [sys.executable, "-m", "laion_spark", "doctor", "--engine", "local"], env=one_core_env(), check=True
        )
    started = time.monotonic()
    proc = offline(["doctor", "--engine", "local", "--json"], one_core_env())
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["table_format"] == "delta" and result["table_rows"] == 100_000
    assert "0 artifacts copied" in proc.stderr and "downloading" not in proc.stderr.lower()
    print(f"doctor --engine local with no network, from the cache: {took:.1f} s")


def test_no_network_and_no_cache_is_one_line_naming_the_jars_and_delta_jars(tmp_path: Path) -> None:
    """Guard: ensure_delta_cached resolves quietly before the JVM starts and turns a failed resolution into one
    EngineError line (without it: Ivy's report and a Java gateway traceback, exit 1)."""
    home = tmp_path / "home"  # no ~/.m2 and no Ivy cache, for Python and for the JVM alike
    home.mkdir()
    env = one_core_env(HOME=str(home), SPARK_SUBMIT_OPTS=f"-Duser.home={home}")
    args = ["doctor", "--engine", "local", "--conf", f"spark.jars.ivy={home / 'ivy'}"]
    proc = offline(args, env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    for text in (jar_name(pinned()["delta.spark"]), jar_name(pinned()["delta.storage"]), "--delta-jars DIR"):
        assert text in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and not (home / "ivy" / "jars").is_dir()


def test_delta_jars_folder_runs_air_gapped_with_no_cache(tmp_path: Path) -> None:
    """Guard: --delta-jars hands the folder's jars to the JVM (spark.jars) and asks no resolver (it once raised
    TypeError: the option's value shadowed the function that checks the folder)."""
    coordinates = [pinned()[key] for key in DELTA_KEYS]
    folder = tmp_path / "jars"
    folder.mkdir()
    for coordinate in coordinates:
        source = cached_jar(coordinate, {})
        if source is None:
            pytest.skip("the Delta jars are not cached here yet (the first test above fetches them)")
        shutil.copy(source, folder / jar_name(coordinate))
    home = tmp_path / "home"
    home.mkdir()
    env = one_core_env(HOME=str(home), SPARK_SUBMIT_OPTS=f"-Duser.home={home}")
    proc = offline(["doctor", "--engine", "local", "--json", "--delta-jars", str(folder)], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["table_format"] == "delta"
    assert "resolving dependencies" not in proc.stderr

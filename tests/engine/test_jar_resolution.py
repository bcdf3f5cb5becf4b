"""The JVM side resolves: every coordinate of ``jars.properties`` comes from Maven Central with ``mvn``, and the
RAPIDS jar holds the plugin class ``conf/rapids.conf`` names, a shim for this Spark version, and every
``spark.rapids.*`` key that profile sets (Spark ignores a misspelled key silently: on a GPU cluster the setting
would just not be there).

The jars are resolved into Maven's local repository (``~/.m2``): the first run downloads them (the RAPIDS jar with
its CUDA classifier is about 1 GB), later runs find them there.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from laion_spark.engine import read_profile
from laion_spark.engine.jars import jar_name, pinned

pytestmark = [pytest.mark.classic, pytest.mark.slow]
M2 = Path.home() / ".m2" / "repository"


def resolve(coordinate: str, classifier: str | None = None) -> Path:
    """``mvn dependency:get`` of one artifact (no transitive ones: the cluster provides Spark); its path in ~/.m2."""
    mvn = shutil.which("mvn")
    if mvn is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mvn is missing: .ci/run installs Maven")
        pytest.skip("mvn is not installed")
    group, artifact, ver = coordinate.split(":")
    spec = f"{coordinate}:jar:{classifier}" if classifier else coordinate
    proc = subprocess.run(
        [mvn, "-B", "-q", "dependency:get", f"-Dartifact={spec}", "-Dtransitive=false"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, f"{spec} does not resolve: {proc.stdout[-2000:]}"
    jar = M2 / Path(*group.split(".")) / artifact / ver / jar_name(coordinate, classifier)
    assert zipfile.is_zipfile(jar), jar
    return jar


def class_constants(jar: zipfile.ZipFile, prefixes: tuple[str, ...], texts: list[str]) -> dict[str, list[str]]:
    """For each text, the classes under ``prefixes`` whose constant pool holds it exactly (a UTF-8 constant)."""
    wanted = {t: struct.pack(">H", len(t.encode())) + t.encode() for t in texts}
    found: dict[str, list[str]] = {t: [] for t in texts}
    for info in jar.infolist():
        if info.filename.endswith(".class") and info.filename.startswith(prefixes):
            data = jar.read(info)
            for text, constant in wanted.items():
                if constant in data:
                    found[text].append(info.filename)
    return found


def test_every_pinned_coordinate_resolves_from_maven_central() -> None:
    jars = pinned()
    for key in ("delta.spark", "delta.storage", "hadoop.aws"):
        resolve(jars[key])
    resolve(jars["rapids"], jars["rapids.classifier"])


def test_the_rapids_jar_has_the_plugin_a_shim_for_this_spark_and_every_key_of_the_rapids_profile() -> None:
    """Guard: a key of conf/rapids.conf that the pinned RAPIDS jar does not define fails here (e.g. the
    misspelling spark.rapids.sql.concurentGpuTasks), not silently on a GPU cluster."""
    jars = pinned()
    path = resolve(jars["rapids"], jars["rapids.classifier"])
    profile = read_profile("rapids")
    shim = "spark" + version("pyspark").replace(".", "")  # spark401: the classes for Spark 4.0.1
    keys = sorted(k for k in profile if k.startswith("spark.rapids."))
    with zipfile.ZipFile(path) as jar:
        names = set(jar.namelist())
        plugin = profile["spark.plugins"].replace(".", "/") + ".class"
        assert plugin in names, f"{path.name} has no {profile['spark.plugins']}"
        assert any(n.startswith(f"{shim}/") for n in names), f"{path.name} has no shim for Spark {version('pyspark')}"
        found = class_constants(
            jar, (f"{shim}/", "spark-shared/", "com/"), [*keys, "spark.rapids.sql.concurentGpuTasks"]
        )
    assert len(keys) >= 6
    missing = [k for k in keys if not found[k]]
    assert not missing, f"conf/rapids.conf sets keys {path.name} does not define: {missing}"
    assert not found["spark.rapids.sql.concurentGpuTasks"]  # the check tells a real key from a misspelled one

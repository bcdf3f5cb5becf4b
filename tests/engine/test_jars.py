"""The JVM artifacts are pinned once: Python and the Gradle build read the same file, in step with pip's pins."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest
from conftest import REPO

from laion_spark.engine import EngineError, delta_coordinate
from laion_spark.engine.jars import delta_jars, pinned


def test_delta_coordinates_match_the_installed_delta_spark_and_spark_line() -> None:
    jars = pinned()
    assert jars["delta.spark"] == delta_coordinate()
    assert jars["delta.spark"] == f"io.delta:delta-spark_2.13:{version('delta-spark')}"
    assert jars["delta.storage"] == f"io.delta:delta-storage:{version('delta-spark')}"
    assert version("delta-spark").split(".")[:2] == version("pyspark").split(".")[:2]  # Delta 4.0 <-> Spark 4.0


def test_gradle_build_takes_every_coordinate_from_the_same_file() -> None:
    build = (REPO / "build.gradle.kts").read_text()
    assert 'file("laion_spark/engine/jars.properties")' in build
    used = set(re.findall(r'coordinate\("([a-z.]+)"\)', build))
    assert used == set(pinned()), used ^ set(pinned())
    assert not re.search(r'"(io\.delta|com\.nvidia|org\.apache\.hadoop):', build), "a coordinate written in the build"


def test_delta_jars_folder_must_hold_the_pinned_jars(tmp_path) -> None:
    with pytest.raises(EngineError, match="delta-spark_2.13-4.0.1.jar is missing"):
        delta_jars(tmp_path)
    for key in ("delta.spark", "delta.storage"):
        _, artifact, ver = pinned()[key].split(":")
        (tmp_path / f"{artifact}-{ver}.jar").write_bytes(b"PK")
    assert [p.name for p in delta_jars(tmp_path)] == ["delta-spark_2.13-4.0.1.jar", "delta-storage-4.0.1.jar"]

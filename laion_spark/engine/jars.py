"""The JVM artifacts of classic Spark, pinned once in ``jars.properties`` (read by Gradle too).

Only the ``local`` engine (and spark-submit on a classic cluster) needs them:
Delta Lake for the lake tables, the RAPIDS Accelerator for the ``rapids``
profile, hadoop-aws for ``s3a://``. Where Maven is reachable the local engine
asks Spark to fetch Delta (``spark.jars.packages``); on an air-gapped machine
``--delta-jars DIR`` points it at jars fetched before (``gradle sparkJars``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .profiles import EngineError


def pinned() -> dict[str, str]:
    """``{"delta.spark": "io.delta:delta-spark_2.13:4.0.1", ...}`` from ``jars.properties``."""
    text = resources.files(__package__).joinpath("jars.properties").read_text(encoding="utf-8")
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def delta_jars(folder: str | Path) -> list[Path]:
    """The Delta jars (``delta-spark`` and ``delta-storage`` at the pinned version) in ``folder``.

    Raises :class:`~laion_spark.engine.EngineError` naming the folder and the jar it lacks.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EngineError(f"--delta-jars {folder}: not a folder")
    found = []
    for key in ("delta.spark", "delta.storage"):
        _, artifact, version = pinned()[key].split(":")
        jar = folder / f"{artifact}-{version}.jar"
        if not jar.is_file():
            raise EngineError(f"--delta-jars {folder}: {jar.name} is missing (gradle sparkJars fetches it)")
        found.append(jar)
    return found

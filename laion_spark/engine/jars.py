"""The JVM artifacts of classic Spark, pinned once in ``jars.properties`` (read by Gradle too).

Only the ``local`` engine (and spark-submit on a classic cluster) needs them:
Delta Lake for the lake tables, the RAPIDS Accelerator for the ``rapids``
profile, hadoop-aws for ``s3a://``. The local engine asks Spark to resolve
Delta from the pinned coordinate (``spark.jars.packages``, Spark's own Ivy);
the first start on a machine downloads the jars into Spark's Ivy cache, later
starts find them there and touch no network. On an air-gapped machine
``--delta-jars DIR`` points it at jars fetched before (``gradle sparkJars``,
``mvn dependency:copy``, or a copy of another machine's cache).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from .profiles import EngineError

#: The Delta artifacts the lake needs on classic Spark (delta-spark pulls delta-storage; antlr ships with Spark).
DELTA_KEYS = ("delta.spark", "delta.storage")
#: Spark 4.0's default Ivy folder (``spark.jars.ivy`` overrides it).
IVY_DEFAULT = ".ivy2.5.2"
#: Seconds the first resolution may take (it downloads about 7 MB).
RESOLVE_TIMEOUT_S = 600


def pinned() -> dict[str, str]:
    """``{"delta.spark": "io.delta:delta-spark_2.13:4.0.1", ...}`` from ``jars.properties``."""
    text = resources.files(__package__).joinpath("jars.properties").read_text(encoding="utf-8")
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def jar_name(coordinate: str, classifier: str | None = None) -> str:
    """``io.delta:delta-storage:4.0.1`` -> ``delta-storage-4.0.1.jar`` (Maven's file name)."""
    _, artifact, version = coordinate.split(":")[:3]
    return f"{artifact}-{version}{f'-{classifier}' if classifier else ''}.jar"


def delta_coordinate() -> str:
    """The Delta Lake Maven coordinate classic Spark fetches (Sail and Databricks write Delta natively), pinned in
    ``jars.properties`` in step with delta-spark in pyproject.toml."""
    return pinned()["delta.spark"]


def delta_jars(folder: str | Path) -> list[Path]:
    """The Delta jars (``delta-spark`` and ``delta-storage`` at the pinned version) in ``folder``.

    Raises :class:`~laion_spark.engine.EngineError` naming the folder and the jar it lacks.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EngineError(f"--delta-jars {folder}: not a folder")
    found = []
    for key in DELTA_KEYS:
        jar = folder / jar_name(pinned()[key])
        if not jar.is_file():
            raise EngineError(f"--delta-jars {folder}: {jar.name} is missing (gradle sparkJars fetches it)")
        found.append(jar)
    return found


def ivy_home(settings: Mapping[str, str]) -> Path:
    """Spark's Ivy folder for these settings: ``spark.jars.ivy``, else ``~/.ivy2.5.2``."""
    return Path(settings.get("spark.jars.ivy") or Path.home() / IVY_DEFAULT).expanduser()


def cached_jar(coordinate: str, settings: Mapping[str, str]) -> Path | None:
    """Where a local cache Spark's resolver reads holds ``coordinate``'s jar, or ``None``.

    Looked at: the Ivy folder's ``jars/`` (what Spark hands the JVM) and ``cache/``, and Maven's local
    repository (``~/.m2/repository``, which Spark's resolver reads first).
    """
    group, artifact, version = coordinate.split(":")[:3]
    ivy = ivy_home(settings)
    for candidate in (
        ivy / "jars" / f"{group}_{artifact}-{version}.jar",
        ivy / "cache" / group / artifact / "jars" / f"{artifact}-{version}.jar",
        Path.home() / ".m2" / "repository" / Path(*group.split(".")) / artifact / version / jar_name(coordinate),
    ):
        if candidate.is_file():
            return candidate
    return None


def spark_home() -> Path:
    """``$SPARK_HOME``, else the pyspark package (the wheel carries ``bin/spark-submit`` and ``jars/``)."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    import pyspark

    return Path(pyspark.__file__).parent


def ensure_delta_cached(settings: Mapping[str, str]) -> list[Path]:
    """Make sure the pinned Delta jars are in Spark's cache before classic Spark starts; return where they are.

    When every jar is cached this only looks at files. Otherwise Spark's own resolver runs once, quietly, in a
    ``spark-submit`` of an empty script with the session's ``spark.jars.*`` settings (repositories, Ivy
    settings, the Ivy folder), and downloads them into the cache.

    Raises :class:`~laion_spark.engine.EngineError` in one line naming the jars that are missing and the way
    out (``--delta-jars DIR``) when they are not cached and cannot be downloaded.
    """
    coordinates = [pinned()[key] for key in DELTA_KEYS]
    found = [cached_jar(c, settings) for c in coordinates]
    if all(found):
        return [p for p in found if p is not None]
    reason = _resolve(coordinates, settings)
    found = [cached_jar(c, settings) for c in coordinates]
    if all(found):
        return [p for p in found if p is not None]
    missing = [jar_name(c) for c, p in zip(coordinates, found, strict=True) if p is None]
    names = " and ".join(jar_name(c) for c in coordinates)
    raise EngineError(
        f"the Delta jar{'s' if len(missing) > 1 else ''} {', '.join(missing)} ({pinned()['delta.spark']}) "
        f"{'are' if len(missing) > 1 else 'is'} not in Spark's cache ({ivy_home(settings)}) and could not be "
        f"downloaded ({reason or 'the resolver gave no reason'}); without network, put {names} in a folder "
        "and pass --delta-jars DIR"
    )


_REASONS = re.compile(r"unresolved dependency: [^\]]+|UnknownHostException[^\n]*|Connection refused[^\n]*|not found")


def _resolve(coordinates: list[str], settings: Mapping[str, str]) -> str | None:
    """Run Spark's resolver for ``coordinates``; ``None`` when it succeeded, else its reason in a few words."""
    submit = spark_home() / "bin" / "spark-submit"
    args = [str(submit), "--packages", coordinates[0]]
    for key, value in settings.items():
        if key.startswith("spark.jars.") and key not in ("spark.jars.packages",):
            args += ["--conf", f"{key}={value}"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    env.pop("SPARK_REMOTE", None)
    with tempfile.TemporaryDirectory(prefix="laion-spark-resolve-") as tmp:
        script = Path(tmp) / "resolve_only.py"
        script.write_text("# nothing to run: spark-submit resolved --packages before starting it\n")
        try:
            proc = subprocess.run(
                [*args, str(script)], capture_output=True, text=True, env=env, timeout=RESOLVE_TIMEOUT_S, cwd=tmp
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{submit}: {err}"
    if proc.returncode == 0:
        return None
    output = proc.stdout + proc.stderr
    reasons = list(dict.fromkeys(m.group(0).strip() for m in _REASONS.finditer(output)))
    return "; ".join(reasons[:2]) if reasons else (output.strip().splitlines() or ["no output"])[-1]

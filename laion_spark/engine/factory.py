"""One factory for every Spark engine the jobs run on.

Jobs only see :class:`LakeSession` (a Spark Connect-compatible ``SparkSession``
plus the table format of the lake); which engine sits behind it is decided here
and nowhere else.

Engines:

* ``sail``   -- LakeSail's Spark Connect server started in-process (default).
* ``local``  -- classic PySpark ``local[*]``.
* ``remote`` -- any Spark Connect endpoint ``sc://host:port``.
* ``active`` -- the session of the surrounding ``spark-submit`` or Databricks job.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession

ENGINES = ("sail", "local", "remote", "active")
TABLE_FORMATS = ("delta", "parquet")
#: The one place the Delta Lake Maven coordinate is pinned (classic Spark only;
#: Sail and Databricks write Delta natively). Keep in step with delta-spark in pyproject.toml.
DELTA_MAVEN_COORDINATE = "io.delta:delta-spark_2.13:4.0.1"
_DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


class EngineError(RuntimeError):
    """An engine could not be started or is misconfigured."""


@dataclass
class LakeSession:
    """A Spark session and the format its lake tables are written in."""

    spark: SparkSession
    engine: str
    table_format: str
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stop the session and, for ``sail``, the embedded server. Idempotent."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass

    def __enter__(self) -> LakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def conf_dir() -> Path:
    """Folder of the Spark profiles: ``$LAION_SPARK_CONF_DIR`` or the repository's ``conf/``."""
    return Path(os.environ.get("LAION_SPARK_CONF_DIR", Path(__file__).resolve().parents[1] / "conf"))


def read_profile(name_or_path: str | Path) -> dict[str, str]:
    """Parse a spark-defaults style profile (``key value`` lines, ``#`` comments).

    A bare name (``local``) is looked up as ``<conf_dir>/<name>.conf``.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = conf_dir() / f"{name_or_path}.conf"
    if not path.is_file():
        raise EngineError(f"Spark profile not found: {path}")
    settings: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise EngineError(f"{path}:{lineno}: expected 'key value', got {raw!r}")
        settings[parts[0]] = parts[1].strip()
    return settings


def resolve_conf(
    engine: str, profiles: Sequence[str | Path] | None, overrides: Mapping[str, str] | None
) -> dict[str, str]:
    """Merge the base and engine profiles (where ``conf_dir()`` has them), extra profiles and overrides.

    Extra profiles must exist; the base ones are optional so that an installed
    wheel without the repository's ``conf/`` still runs under spark-submit.
    """
    names: list[str | Path] = [name for name in ("spark-defaults", engine) if (conf_dir() / f"{name}.conf").is_file()]
    names.extend(profiles or ())
    merged: dict[str, str] = {}
    for name in names:
        merged.update(read_profile(name))
    merged.update(overrides or {})
    return merged


def open_session(
    engine: str = "sail",
    *,
    remote: str | None = None,
    profiles: Sequence[str | Path] | None = None,
    conf: Mapping[str, str] | None = None,
    table_format: str | None = None,
    app_name: str = "laion-spark",
) -> LakeSession:
    """Start (or attach to) a Spark session on ``engine``.

    ``table_format`` defaults to ``$LAION_SPARK_TABLE_FORMAT`` or ``delta``;
    ``parquet`` exists for classic Spark where the Delta jars cannot be fetched.
    """
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    table_format = table_format or os.environ.get("LAION_SPARK_TABLE_FORMAT", "delta")
    if table_format not in TABLE_FORMATS:
        raise EngineError(f"unknown table format {table_format!r}; choose one of {', '.join(TABLE_FORMATS)}")
    settings = resolve_conf(engine, profiles, conf)
    if engine == "sail":
        return _sail(settings, table_format)
    if engine == "local":
        return _local(settings, table_format, app_name)
    if engine == "remote":
        if not remote:
            raise EngineError("engine 'remote' needs a Spark Connect URL, e.g. --remote sc://host:15002")
        spark = SparkSession.builder.remote(remote).getOrCreate()
        _apply_runtime_conf(spark, settings)
        return LakeSession(spark, engine, table_format, [spark.stop])
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise EngineError("engine 'active' needs a running session: use it inside spark-submit or a Databricks job")
    _apply_runtime_conf(spark, settings)
    return LakeSession(spark, engine, table_format)


@contextmanager
def session(engine: str = "sail", **kwargs: object) -> Iterator[LakeSession]:
    """``with session("sail") as lake: ...``: open_session that stops on exit."""
    lake = open_session(engine, **kwargs)  # type: ignore[arg-type]
    try:
        yield lake
    finally:
        lake.stop()


def _apply_runtime_conf(spark: SparkSession, settings: Mapping[str, str]) -> None:
    """Set the runtime SQL settings; static ones belong to whoever built the session."""
    for key, value in settings.items():
        if key.startswith("spark.sql.") and not key.startswith(("spark.sql.extensions", "spark.sql.catalog.")):
            try:
                spark.conf.set(key, value)
            except Exception:  # noqa: BLE001 - engines may refuse settings they do not implement
                pass


def _sail(settings: Mapping[str, str], table_format: str) -> LakeSession:
    os.environ.setdefault("RUST_LOG", "warn")
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").getOrCreate()
    _apply_runtime_conf(spark, settings)
    lake = LakeSession(spark, "sail", table_format, [server.stop, spark.stop])
    atexit.register(lake.stop)
    return lake


def _local(settings: Mapping[str, str], table_format: str, app_name: str) -> LakeSession:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(os.environ.get("LAION_SPARK_MASTER", "local[*]")).appName(app_name)
    if table_format == "delta":
        builder = builder.config("spark.jars.packages", DELTA_MAVEN_COORDINATE)
        for key, value in _DELTA_CONF.items():
            builder = builder.config(key, value)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    lake = LakeSession(spark, "local", table_format, [spark.stop])
    atexit.register(lake.stop)
    return lake

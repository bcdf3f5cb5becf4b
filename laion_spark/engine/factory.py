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
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from ..errors import first_line
from . import jars as _jars
from .features import DELTA_SPARK_WRITER_FEATURES, SAIL_WRITER_FEATURES
from .jars import delta_coordinate
from .names import ENGINES, TABLE_FORMATS
from .profiles import EngineError, resolve_conf
from .session import LakeSession

_log = logging.getLogger(__name__)
_DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
#: What Sail's native library reads from the environment as it loads; a value already set wins. ``RUST_LOG``:
#: errors only. ``MIMALLOC_ALLOW_THP=0``: Sail's allocator (mimalloc) otherwise asks the kernel for transparent huge
#: pages on its 1 GiB arenas (``madvise(MADV_HUGEPAGE)``), and every first touch of a 2 MiB page is zeroed whole.
#: Measured on the 2-core VM (THP ``madvise``, 2026-12-05), fresh processes, interleaved, three runs each:
#: ``join-tags`` 8M rows 8.47-8.66 s (4.5-5.4 s system time) -> 7.15-7.21 s (1.5-1.7 s); ``build-kv`` 20M rows
#: 3.15-3.64 s -> 2.68-2.83 s; ``score-embeddings`` 4M rows 4.40-4.44 s -> 4.09-4.14 s. A warm, long-lived session
#: reuses its pages and loses a little instead (``build_kv`` 20M in-process 1.57 s -> 1.65-1.70 s; the join the same):
#: set ``MIMALLOC_ALLOW_THP=1`` there. ``SAIL_SPARK__SESSION_TIMEOUT_SECS``: the in-process server serves this process
#: alone, so its session must live as long as the process; Sail's default drops a session idle for 900 s, and the next
#: query fails with "session ... is not running" (a UMAP fit on the driver, or a long pause between stages, idles that
#: long). 365 days; a running query is never idle (Sail sends heartbeats), and the value must stay finite (u64::MAX hangs).
SAIL_ENV = {"RUST_LOG": "error", "MIMALLOC_ALLOW_THP": "0", "SAIL_SPARK__SESSION_TIMEOUT_SECS": str(365 * 24 * 3600)}


def open_session(
    engine: str = "sail",
    *,
    remote: str | None = None,
    profiles: Sequence[str | Path] | None = None,
    conf: Mapping[str, str] | None = None,
    table_format: str | None = None,
    delta_jars: str | Path | None = None,
    app_name: str = "laion-spark",
) -> LakeSession:
    """Start (or attach to) a Spark session on ``engine``.

    ``profiles`` and ``conf`` add Spark settings to the defaults (see
    :func:`~laion_spark.engine.resolve_conf`); those the engine cannot apply are
    reported as a warning and kept in ``LakeSession.unapplied``.
    ``table_format`` defaults to ``$LAION_SPARK_TABLE_FORMAT`` or ``delta``;
    ``parquet`` exists for classic Spark where the Delta jars cannot be fetched.
    ``delta_jars`` (default ``$LAION_SPARK_DELTA_JARS``): for ``local``, a folder
    holding the pinned Delta jars, used instead of fetching them from Maven.

    Raises :class:`~laion_spark.engine.EngineError` for an unknown engine or
    format, a bad profile or setting, a missing URL, jar or active session.
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
        folder = delta_jars or os.environ.get("LAION_SPARK_DELTA_JARS")
        return _local(settings, table_format, app_name, _jars.delta_jars(folder) if folder else None)
    if engine == "remote":
        if not remote:
            raise EngineError("engine 'remote' needs a Spark Connect URL, e.g. --remote sc://host:15002")
        try:
            spark = SparkSession.builder.remote(remote).getOrCreate()
            spark.version  # noqa: B018 - the first call that reaches the server
        except Exception as err:  # noqa: BLE001 - a malformed or unreachable URL raises several error types
            raise EngineError(f"--remote {remote}: no Spark Connect server answers there ({first_line(err)})") from None
        return _apply_conf(LakeSession(spark, engine, table_format, [spark.stop]), settings)
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise EngineError("engine 'active' needs a running session: use it inside spark-submit or a Databricks job")
    # spark-submit runs the pinned delta-spark; a Databricks runtime has its own Delta, with features of its own.
    features = None if os.environ.get("DATABRICKS_RUNTIME_VERSION") else DELTA_SPARK_WRITER_FEATURES
    return _apply_conf(LakeSession(spark, engine, table_format, delta_writer_features=features), settings)


def _apply_conf(lake: LakeSession, settings: Mapping[str, str]) -> LakeSession:
    """Set every setting the session still lets change; warn about (and keep in ``lake.unapplied``) the others.

    A setting is left unapplied when the engine reports it as not modifiable
    (static settings of a running session, keys Sail does not implement) or
    refuses it, unless the session already holds that value.
    """
    conf = lake.spark.conf
    for key, value in settings.items():
        try:
            if conf.isModifiable(key):
                conf.set(key, value)
                continue
        except Exception:  # noqa: BLE001 - engines refuse settings with different error types
            pass
        try:
            current = conf.get(key, None)
        except Exception:  # noqa: BLE001 - as above
            current = None
        if current != value:
            lake.unapplied[key] = value
    if lake.unapplied:
        _log.warning(
            "engine %s did not apply %s: static settings belong to whoever starts the session "
            "(spark-submit --conf, the cluster), and engines ignore keys they do not implement",
            lake.engine,
            ", ".join(f"{k}={v}" for k, v in lake.unapplied.items()),
        )
    return lake


def _sail(settings: Mapping[str, str], table_format: str) -> LakeSession:
    for key, value in SAIL_ENV.items():
        os.environ.setdefault(key, value)
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").getOrCreate()
    lake = LakeSession(
        spark, "sail", table_format, [server.stop, spark.stop], delta_writer_features=SAIL_WRITER_FEATURES
    )
    atexit.register(lake.stop)
    return _apply_conf(lake, settings)


def _local(settings: Mapping[str, str], table_format: str, app_name: str, jars: Sequence[Path] | None) -> LakeSession:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(os.environ.get("LAION_SPARK_MASTER", "local[*]")).appName(app_name)
    if table_format == "delta":
        if jars:
            builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
        else:  # downloaded once into Spark's Ivy cache (or one clear error), then resolved from there
            _jars.ensure_delta_cached(settings)
            builder = builder.config("spark.jars.packages", delta_coordinate())
        for key, value in _DELTA_CONF.items():
            builder = builder.config(key, value)
    for key, value in settings.items():
        builder = builder.config(key, value)
    existing = SparkSession.getActiveSession()
    spark = builder.getOrCreate()
    closers = [] if existing else [spark.stop]
    lake = LakeSession(spark, "local", table_format, closers, delta_writer_features=DELTA_SPARK_WRITER_FEATURES)
    atexit.register(lake.stop)
    return _apply_conf(lake, settings)  # a session that existed before kept its static settings

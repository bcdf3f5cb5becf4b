"""Reading and writing lake tables (Delta, or Parquet where Delta is unavailable).

The table format comes from the :class:`~laion_spark.session.LakeSession`; jobs
call these helpers instead of ``df.write.format(...)`` so that partition-scoped
replacement is done the one way that is safe on every engine.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyspark.sql import DataFrame

from .session import LakeSession


def table_path(path: str | Path) -> str:
    """Absolute path for a local folder; URIs (``s3://``, ``dbfs:/`` ...) unchanged."""
    text = str(path)
    if "://" in text or text.startswith("dbfs:"):
        return text
    return str(Path(text).expanduser().resolve())


def lake_table(lake_dir: str | Path, name: str) -> str:
    """Path of the table ``name`` in the lake folder ``lake_dir`` (local folder or URI)."""
    base = str(lake_dir)
    if "://" in base or base.startswith("dbfs:"):
        return base.rstrip("/") + "/" + name
    return table_path(Path(base) / name)


def is_delta(path: str | Path) -> bool:
    """True when ``path`` is a local folder holding a Delta log."""
    return (Path(str(path)) / "_delta_log").is_dir()


def table_exists(lake: LakeSession, path: str | Path) -> bool:
    """Whether a table in the session's format is at ``path``."""
    text = table_path(path)
    if "://" not in text and not text.startswith("dbfs:"):
        local = Path(text)
        if lake.table_format == "delta":
            return is_delta(local) and any((local / "_delta_log").glob("*.json"))
        return local.is_dir() and any(local.rglob("*.parquet"))
    try:
        lake.spark.read.format(lake.table_format).load(text).schema  # noqa: B018
    except Exception:  # noqa: BLE001 - engines raise different types for "no table"
        return False
    return True


def read_table(lake: LakeSession, path: str | Path) -> DataFrame:
    """Read a lake table written by :func:`write_table`."""
    text = table_path(path)
    if not table_exists(lake, text):
        raise FileNotFoundError(f"no {lake.table_format} table at {text}")
    return lake.spark.read.format(lake.table_format).load(text)


def write_table(
    lake: LakeSession,
    df: DataFrame,
    path: str | Path,
    *,
    mode: str = "append",
    partition_by: Sequence[str] | None = None,
    replace_partition: Mapping[str, str] | None = None,
) -> None:
    """Write ``df`` to the table at ``path``.

    ``replace_partition={"collection": "laion2B-en"}`` replaces just that
    partition and keeps the others (Delta ``replaceWhere``; for Parquet the
    partition folder is removed, then the data appended). ``mode`` is ``append`` or ``overwrite`` otherwise.
    """
    text = table_path(path)
    writer = df.write.format(lake.table_format)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_partition and table_exists(lake, text):
        if lake.table_format == "delta":
            condition = " AND ".join(f"`{k}` = '{_sql_str(v)}'" for k, v in replace_partition.items())
            writer.option("replaceWhere", condition).mode("overwrite").save(text)
            return
        _drop_parquet_partition(text, replace_partition)
    writer.mode("append" if replace_partition else mode).save(text)


def _drop_parquet_partition(path: str, partition: Mapping[str, str]) -> None:
    """Remove one partition folder of a local Parquet table (Delta does this in its log instead).

    Parquet tables exist for classic Spark without the Delta jars, i.e. local
    tests and laptops; removing the folder, then appending, also clears the
    partition when the new data is empty (dynamic overwrite would keep it).
    """
    if "://" in path or path.startswith("dbfs:"):
        raise ValueError(f"{path}: partition replacement on a non-local Parquet table is not supported; use Delta")
    folder = Path(path).joinpath(*(f"{k}={v}" for k, v in partition.items()))
    if folder.is_dir():
        shutil.rmtree(folder)


def _sql_str(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")

"""SQL over the lake: every table of a lake folder registered as a temporary view by its name."""

from __future__ import annotations

import re
from pathlib import Path

from pyspark.sql import DataFrame

from ..engine.factory import LakeSession
from ..errors import InputError, first_line
from .tables import read_table, table_exists

_VIEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def register_views(lake: LakeSession, lake_dir: str | Path) -> list[str]:
    """Register each table folder of the local ``lake_dir`` as a view named like the folder; returns the names.

    Raises :class:`~laion_spark.lake.TableError` for a folder that is not a lake, or holds no table.
    """
    root = Path(lake_dir)
    if not root.is_dir():
        raise InputError(f"--lake {root}: not a folder")
    names = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _VIEW_NAME.match(p.name)):
        if table_exists(lake, folder):
            read_table(lake, folder).createOrReplaceTempView(folder.name)
            names.append(folder.name)
    if not names:
        raise InputError(f"--lake {root}: holds no {lake.table_format} table")
    return names


def lake_sql(lake: LakeSession, lake_dir: str | Path, query: str) -> DataFrame:
    """``query`` over the lake's views (see :func:`register_views`), analysed now.

    Raises :class:`InputError` naming the query's first problem (unknown table or column, syntax).
    """
    names = register_views(lake, lake_dir)
    try:
        frame = lake.spark.sql(query)
        frame.schema  # noqa: B018 - analyse now: a bad query is the user's input
    except Exception as err:  # noqa: BLE001 - engines raise different types for a bad query
        raise InputError(f"query: {first_line(err)} (tables: {', '.join(names)})") from None
    return frame

"""The lake's layout: LAION's collections, where a lake's tables are (local or behind a URI), and the tables that
record runs (nothing but the standard library)."""

from __future__ import annotations

import re
from pathlib import Path

from ..paths import is_uri, normalise_path

#: The three LAION-5B metadata collections.
COLLECTIONS = ("laion2B-en", "laion2B-multi", "laion1B-nolang")


#: A collection's name: what a partition folder ``collection=<name>`` holds on every file system (at most 128
#: characters: a folder name may have 255 bytes).
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def collection_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a collection's name (a partition folder), or ``None`` when it can."""
    if COLLECTION_NAME.fullmatch(name):
        return None
    if len(name) > 128:
        return f"collection name {name[:40]!r}... has {len(name)} characters: at most 128"
    return f"collection name {name!r}: use letters, digits, '.', '_' and '-'"


def is_local(path: str | Path) -> bool:
    """Whether ``path`` is on the local file system (a path or a ``file:`` URI; not ``s3://``, ``dbfs:/`` ...)."""
    return not is_uri(str(path))


def table_path(path: str | Path) -> str:
    """Absolute path for a local folder (:func:`~laion_spark.paths.normalise_path`, then symbolic links
    resolved); URIs (``s3://``, ``dbfs:/`` ...) unchanged."""
    text = str(path)
    if not is_local(text):
        return text
    return str(Path(normalise_path(text)).resolve())


def lake_table(lake_dir: str | Path, name: str) -> str:
    """Path of the table ``name`` in the lake folder ``lake_dir`` (local folder or URI)."""
    base = str(lake_dir)
    if not is_local(base):
        return base.rstrip("/") + "/" + name
    return table_path(Path(base) / name)


#: The table every job appends its run summary to.
RUNS_TABLE = "runs"
#: The table the pipeline records its completed stages in.
STAGES_TABLE = "pipeline_stages"
#: Tables that record runs: they change with every run, so no stage reads or writes them as data.
BOOKKEEPING = (RUNS_TABLE, STAGES_TABLE)
#: The lake's folder of what runs stage for themselves (``<job>/<run or input>``), no table: ``score-images``' rows
#: per tar, ``join-tags``' scratch copy (:mod:`laion_spark.lake.scratch`).
SCRATCH_FOLDER = "_staging"


def lake_tables(lake_dir: str | Path) -> list[str]:
    """Every table folder of a local lake but the :data:`BOOKKEEPING` ones, sorted (none for a lake not made yet);
    :data:`SCRATCH_FOLDER`, which an interrupted run may leave, is no table."""
    root = Path(lake_dir).expanduser()
    if not is_local(str(lake_dir)) or not root.is_dir():
        return []
    skipped = {*BOOKKEEPING, SCRATCH_FOLDER}
    return [table_path(p) for p in sorted(root.iterdir()) if p.is_dir() and p.name not in skipped]

"""A local Delta table's latest version as its log says it is, without reading a data file: which data files
are live (the latest checkpoint's ``add`` actions, then each later commit's ``add`` and ``remove``) and what
their statistics say (rows, and nulls per column).

Every function returns ``None`` where the log cannot say: no commit, a V2 or sidecar checkpoint, a gap in the
commits, a URI (the log is read from the local filesystem), or, for statistics, a file written without them.
Callers then read the data files instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq

from .layout import is_local, table_path
from .protocol import CHECKPOINT, COMMIT


@dataclass(frozen=True)
class FileStats:
    """One data file's statistics from its ``add`` action: ``rows`` (``numRecords``) and ``nulls`` per column."""

    rows: int
    nulls: Mapping[str, int]


def live_files(folder: Path) -> set[str] | None:
    """The data files of the latest version of the local Delta table ``folder``, as paths relative to it.

    A file under the folder that is not among them is no part of the table: a concurrent writer's file not yet
    committed, or one left by a writer that died before its commit.
    """
    adds = _live_adds(folder)
    return None if adds is None else set(adds)


def partition_stats(folder: str | Path, partition: Mapping[str, str], columns: Sequence[str]) -> list[FileStats] | None:
    """The statistics of every live data file of the Delta table ``folder`` in ``partition`` (``{"collection":
    "laion2B-en"}``), with the null counts of ``columns``; ``None`` when the log cannot say, or when a file's
    ``add`` action has no ``numRecords`` or no null count for one of ``columns`` (stats not collected)."""
    text = table_path(folder)
    adds = _live_adds(Path(text)) if is_local(text) else None
    if adds is None:
        return None
    found = []
    for add in adds.values():
        values = add.get("partitionValues") or {}
        values = dict(values) if not isinstance(values, Mapping) else values  # a checkpoint's map: (key, value) pairs
        if any(values.get(key) != value for key, value in partition.items()):
            continue
        stats = json.loads(add.get("stats") or "{}")
        nulls = stats.get("nullCount") or {}
        if "numRecords" not in stats or any(not isinstance(nulls.get(c), int) for c in columns):
            return None
        found.append(FileStats(int(stats["numRecords"]), {c: int(nulls[c]) for c in columns}))
    return found


def _live_adds(folder: Path) -> dict[str, dict] | None:
    """The ``add`` action of each data file of the latest version, by its path relative to ``folder``."""
    log = folder / "_delta_log"
    names = [p.name for p in log.iterdir()] if log.is_dir() else []
    commits = sorted((int(m[1]), name) for name in names if (m := COMMIT.match(name)))
    checkpoints = sorted((int(m[1]), name) for name in names if (m := CHECKPOINT.match(name)))
    since = checkpoints[-1][0] if checkpoints else -1
    later = [(version, name) for version, name in commits if version > since]
    if not commits or [version for version, _ in later] != list(range(since + 1, since + 1 + len(later))):
        return None
    live: dict[str, dict] = {}
    for _, name in (c for c in checkpoints if c[0] == since):
        if name.endswith(".json"):
            return None
        table = pq.read_table(log / name)
        if "sidecar" in table.column_names and table.column("sidecar").null_count < table.num_rows:
            return None
        if "add" in table.column_names:
            live.update((unquote(row["path"]), row) for row in table.column("add").to_pylist() if row)
    for _, name in later:
        for line in (log / name).read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028 in stats
            if '"add"' in line or '"remove"' in line:
                action = json.loads(line)
                if "add" in action:
                    live[unquote(action["add"]["path"])] = action["add"]
                elif "remove" in action:
                    live.pop(unquote(action["remove"]["path"]), None)
    return live

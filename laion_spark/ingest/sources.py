"""Input files of the join: listing, parquet footers and column checks (driver side, no Spark work).

Every check here reads parquet footers only, so a wrong input fails in
milliseconds, before an engine reads a single row. Column types are named the
way Spark names them (``string``, ``int``, ``bigint``, ``double`` ...) so the
same checks apply to a parquet footer and to a Delta table's Spark schema.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..lake.columns import KINDS, spark_columns

_LISTED = 10


class JoinInputError(InputError):
    """An input the join cannot use; the message names the file or table and what is wrong."""


@dataclass(frozen=True)
class ParquetFiles:
    """The parquet files under one input path and their footers."""

    root: Path
    files: tuple[Path, ...]
    columns: tuple[dict[str, str], ...]
    rows: int


def list_data_files(path: str | Path, what: str) -> list[Path]:
    """``path`` itself, or every data file below it (names starting with ``_`` or ``.`` are skipped, as Spark does)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise JoinInputError(f"{what}: {root} does not exist")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)
    )
    if not files:
        raise JoinInputError(f"{what}: no data files under {root}")
    return files


def read_footers(path: str | Path, what: str) -> ParquetFiles:
    """Footers of every file of ``path``; one error names each unreadable or non-parquet file."""
    files = list_data_files(path, what)
    columns: list[dict[str, str]] = []
    rows = 0
    unreadable: list[str] = []
    for file in files:
        try:
            meta = pq.read_metadata(file)
            columns.append(spark_columns(meta.schema.to_arrow_schema()))
        except (OSError, pa.ArrowException, ValueError) as err:  # ValueError: a name that is not UTF-8
            unreadable.append(f"  {file}: {err}")
            continue
        rows += meta.num_rows
    if unreadable:
        raise JoinInputError(f"{what}: not readable as parquet:\n" + "\n".join(_capped(unreadable)))
    return ParquetFiles(Path(path), tuple(files), tuple(columns), rows)


def check_columns(
    sources: Sequence[tuple[str, Mapping[str, str]]],
    required: Mapping[str, str],
    optional: Mapping[str, str],
    what: str,
) -> dict[str, str]:
    """Check each ``(label, columns)`` source against the wanted columns and kinds.

    Returns the Spark type of every required column and of every optional one
    some source has. All problems (missing columns per file, wrong kinds,
    types that differ between files) are raised together in one error.
    """
    missing: dict[tuple[str, ...], list[str]] = defaultdict(list)
    seen: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for label, columns in sources:
        gone = tuple(c for c in required if c not in columns)
        if gone:
            missing[gone].append(label)
        for name in (*required, *optional):
            if name in columns:
                seen[name][columns[name]].append(label)
    problems = [f"missing column(s) {', '.join(gone)} in {_files(labels)}" for gone, labels in sorted(missing.items())]
    for name, kinds in {**required, **optional}.items():
        for spark_type, labels in sorted(seen[name].items()):
            if spark_type not in KINDS[kinds]:
                problems.append(f"column {name} is {spark_type}, expected {kinds}, in {_files(labels)}")
        if len(seen[name]) > 1:
            found = "; ".join(f"{t} in {_files(labels)}" for t, labels in sorted(seen[name].items()))
            problems.append(f"column {name} has different types across files: {found}")
    if problems:
        raise JoinInputError(f"{what}:\n" + "\n".join(f"  {p}" for p in problems))
    return {name: next(iter(seen[name])) for name in (*required, *optional) if seen[name]}


def read_schema_ddl(columns: Mapping[str, str]) -> str:
    """Spark DDL read schema for ``columns`` (name -> Spark type)."""
    return ", ".join(f"`{name}` {spark_type}" for name, spark_type in columns.items())


def _files(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:_LISTED])
    more = len(labels) - _LISTED
    return shown + (f" (+{more} more of {len(labels)})" if more > 0 else "")


def _capped(lines: list[str]) -> list[str]:
    more = len(lines) - _LISTED
    return lines[:_LISTED] + ([f"  (+{more} more)"] if more > 0 else [])

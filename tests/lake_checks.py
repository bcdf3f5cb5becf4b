"""Reading lake tables written in either format, and comparing them order-independently."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable

#: Tables every run appends to (their rows differ between runs by design).
BOOKKEEPING = ("runs", "pipeline_stages")
#: The KV files the test pipeline builds under its root's ``kv/``.
KV_FILES = ("aesthetic.kv", "watermark_safety.kv")


def read_any(path: Path) -> pa.Table:
    """A Delta table (read by ``deltalake``) or a Hive-partitioned Parquet table, partition columns as strings."""
    if (path / "_delta_log").is_dir():
        return DeltaTable(str(path)).to_pyarrow_table()
    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    return table


def _canonical(value: object, digits: int) -> object:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, digits)
    if isinstance(value, list):
        return [_canonical(v, digits) for v in value]
    return value


def digest(table: pa.Table, columns: Iterable[str] | None = None, digits: int = 5) -> tuple[int, str]:
    """``(rows, checksum)`` of ``columns`` (default: all, by name), independent of row and column order.

    Floats are rounded to ``digits`` decimals (engines may sum in another order); NaN counts as null.
    """
    names = sorted(columns or table.column_names)
    rows = zip(*(table.column(n).to_pylist() for n in names), strict=True) if names else iter(())
    lines = sorted(repr(tuple(_canonical(v, digits) for v in row)) for row in rows)
    return table.num_rows, hashlib.sha256("\n".join([repr(names), *lines]).encode()).hexdigest()


#: Columns of a ledger that name the run or where it ran (the tar's and the embeddings' absolute paths):
#: two runs in two folders differ there by design.
RUN_COLUMNS = {"image_tars": ("run_id", "tar", "embeddings")}


def lake_digests(lake: Path) -> dict[str, tuple[int, str]]:
    """:func:`digest` of every table of ``lake`` but the bookkeeping ones, without the run-naming columns (folders
    starting with ``_`` hold no table: the fitted UMAP models)."""
    digests = {}
    for path in sorted(p for p in lake.iterdir() if p.is_dir() and p.name not in BOOKKEEPING and p.name[0] != "_"):
        table = read_any(path)
        skip = RUN_COLUMNS.get(path.name, ())
        digests[path.name] = digest(table, [c for c in table.column_names if c not in skip])
    return digests


def assert_same_tables(root: Path, reference: Path, names: Iterable[str]) -> None:
    """The lake tables ``names`` of the runs under ``root`` and ``reference`` hold the same rows (:func:`digest`,
    without the run-naming columns), and none of them is empty."""
    for name in names:
        ours, theirs = read_any(root / "lake" / name), read_any(reference / "lake" / name)
        skip = RUN_COLUMNS.get(name, ())
        assert ours.num_rows > 0, f"{name} is empty: the comparison would prove nothing"
        assert digest(ours, [c for c in ours.column_names if c not in skip]) == digest(
            theirs, [c for c in theirs.column_names if c not in skip]
        ), name


def assert_same_kv_files(root: Path, reference: Path) -> None:
    """The :data:`KV_FILES` of the runs under ``root`` and ``reference`` are the same bytes."""
    for name in KV_FILES:
        assert (root / "kv" / name).read_bytes() == (reference / "kv" / name).read_bytes(), name


def assert_same_run(root: Path, reference: Path) -> None:
    """The runs under ``root`` and ``reference`` wrote the same lake (:func:`lake_digests`) and KV files."""
    assert lake_digests(root / "lake") == lake_digests(reference / "lake")
    assert_same_kv_files(root, reference)

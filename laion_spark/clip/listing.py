"""img2dataset's per-shard parquet, "the listing": one row for every URL of a shard, downloaded or not.

img2dataset writes beside each ``NNNNN.tar`` a ``NNNNN.parquet`` holding every URL it was given for that
shard, the tar's samples and the failed ones alike -- the input's columns (``url``, ``caption`` and the
``--save_additional_columns``, e.g. ``similarity``, ``LANGUAGE``), then ``key, status, error_message, width,
height, original_width, original_height`` and, when asked, ``exif`` and ``sha256`` -- and a
``NNNNN_stats.json`` with its counts. ``status`` is ``success`` for a sample in the tar, else
``failed_to_download`` or ``failed_to_resize`` with img2dataset's ``error_message``; ``width``/``height`` are
the stored (resized) size, ``original_width``/``original_height`` the size of the image as downloaded
(LAION's ``WIDTH``/``HEIGHT``).

When a tar has its listing, score-images reads it (:func:`read_listing`, in the task) so that every URL is
accounted for: embedded, failed in the tar (score-images' error), or failed before it (img2dataset's status,
as the kinds of :data:`STATUS_KINDS`); a listed success the tar lacks is ``missing_from_tar``. The driver
checks every listing's footer first (:func:`listing_schema`: readable, img2dataset's columns with their types)
and unites the additional columns of all listings (:func:`extras_of`), so that a bad listing is refused before
anything is written. Tars without a listing are read as before: their ``.json`` records only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import InputError, first_line
from .reader import RECORD_FIELDS

#: img2dataset's own columns of a listing, and what each must hold (``text``, or a ``size``: int32 >= 0).
LISTING_COLUMNS: dict[str, str] = {"caption": "text", "key": "text", **RECORD_FIELDS}
#: Columns a listing must have to be img2dataset's.
REQUIRED_COLUMNS = ("url", "key", "status")
#: img2dataset's status of a sample written to the tar.
SUCCESS = "success"
#: Error kind of each img2dataset failure status (any other status ``S`` is ``img2dataset_S``).
STATUS_KINDS = {"failed_to_download": "not_downloaded", "failed_to_resize": "not_resized"}
#: Error kind of a URL the listing says is in the tar, which the tar does not hold.
MISSING_FROM_TAR = "missing_from_tar"
#: Characters a Delta column name cannot hold (without column mapping): replaced by ``_`` in the lake.
_NOT_IN_DELTA_NAMES = re.compile(r"[ ,;{}()\n\t=]")


class ListingError(InputError):
    """An img2dataset listing (a tar's ``.parquet``) that cannot be read as one."""


@dataclass(frozen=True)
class Extra:
    """An additional column of the listings (img2dataset's ``--save_additional_columns``).

    ``name`` is its name in the listing and in the embedding metadata (as clip-retrieval keeps it), ``column``
    its name in the lake tables (``name``, unless a lake table has a column of that name, case aside: then
    ``img2dataset_<name>``; characters Delta refuses become ``_``), ``type`` the Arrow type both keep:
    ``bool``, ``int64``, ``double`` or ``string`` (any other type is written as text).
    """

    name: str
    column: str
    type: pa.DataType


def listing_of(tar: Path) -> Path | None:
    """img2dataset's listing of ``tar`` (``DIR/NNNNN.tar`` -> ``DIR/NNNNN.parquet``), ``None`` when there is none."""
    path = tar.with_suffix(".parquet")
    return path if path.is_file() else None


def stats_of(tar: Path) -> Path | None:
    """img2dataset's ``DIR/NNNNN_stats.json`` of ``tar``, ``None`` when there is none."""
    path = tar.with_name(f"{tar.stem}_stats.json")
    return path if path.is_file() else None


def stats_count(path: Path) -> int:
    """The ``count`` of URLs an img2dataset ``_stats.json`` says its shard was given.

    Raises :class:`ListingError` naming the file when it is not JSON or has no integer ``count``.
    """
    try:
        count = json.loads(path.read_bytes()).get("count")
    except (OSError, ValueError, RecursionError, AttributeError) as err:
        raise ListingError(f"{path}: not img2dataset's stats ({first_line(err)})") from None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ListingError(f"{path}: not img2dataset's stats (count is {count!r}, not a number of URLs)")
    return count


def _fits(kind: str, type_: pa.DataType) -> bool:
    """Whether a listing column of Arrow type ``type_`` can hold values of ``kind`` (``text`` or ``size``)."""
    if pa.types.is_null(type_):
        return True
    if kind == "text":
        return pa.types.is_string(type_) or pa.types.is_large_string(type_)
    return pa.types.is_integer(type_)


def listing_schema(path: Path) -> pa.Schema:
    """The schema of the listing at ``path``, from its footer, checked to be img2dataset's.

    Raises :class:`ListingError` naming the file for one that is not parquet, lacks a column of
    :data:`REQUIRED_COLUMNS`, or has one of :data:`LISTING_COLUMNS` of another type (text, integer sizes).
    """
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException, ValueError) as err:
        raise ListingError(
            f"{path}: img2dataset's listing of its tar is not readable parquet ({first_line(err)})"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    if missing:
        raise ListingError(
            f"{path}: lacks img2dataset's column(s) {', '.join(missing)}; a parquet beside a tar under the tar's "
            "name is read as img2dataset's listing of it: move it away"
        )
    for name, kind in LISTING_COLUMNS.items():
        if name in schema.names and not _fits(kind, schema.field(name).type):
            wanted = "text" if kind == "text" else "integers"
            raise ListingError(f"{path}: column {name} is {schema.field(name).type}, img2dataset writes {wanted}")
    return schema


def _kept_type(type_: pa.DataType) -> pa.DataType | None:
    """The type an additional column keeps (``None``: all null, no type yet)."""
    if pa.types.is_null(type_):
        return None
    if pa.types.is_boolean(type_):
        return pa.bool_()
    if pa.types.is_integer(type_):
        return pa.int64()
    if pa.types.is_floating(type_):
        return pa.float64()
    return pa.string()


def lake_column(name: str, taken: Iterable[str]) -> str:
    """The lake name of an additional column ``name``: Delta-safe, and clear of the ``taken`` names (case aside)."""
    column = _NOT_IN_DELTA_NAMES.sub("_", name) or "_"
    lower = {t.lower() for t in taken}
    while column.lower() in lower:
        column = f"img2dataset_{column}"
    return column


def extras_of(schemas: Mapping[Path, pa.Schema], reserved: Iterable[str]) -> tuple[Extra, ...]:
    """The additional columns of the listings (every column that is not one of :data:`LISTING_COLUMNS`), in
    first-seen order, each with the type they all agree on.

    ``reserved`` are the lake tables' own columns (:func:`lake_column`). Raises :class:`ListingError` naming two
    listings where one column has types that do not agree (all-null columns agree with any).
    """
    types: dict[str, tuple[pa.DataType | None, Path]] = {}
    for path, schema in schemas.items():
        for f in schema:
            if f.name in LISTING_COLUMNS:
                continue
            kept, (seen, where) = _kept_type(f.type), types.get(f.name, (None, path))
            if kept is not None and seen is not None and kept != seen:
                raise ListingError(
                    f"{path}: additional column {f.name} is {f.type}, but {seen} in {where}: the listings of one "
                    "run must agree"
                )
            types[f.name] = (seen or kept, where if seen is not None else path)
    taken = list(reserved)
    extras = []
    for name, (type_, _) in types.items():
        column = lake_column(name, taken)
        taken.append(column)
        extras.append(Extra(name, column, type_ or pa.string()))
    return tuple(extras)


def _as(column: pa.ChunkedArray, type_: pa.DataType) -> pa.ChunkedArray:
    """``column`` cast to ``type_``; to text, a type Arrow cannot cast is written as JSON, value by value."""
    if column.type == type_:
        return column
    try:
        return pc.cast(column, type_)
    except pa.ArrowNotImplementedError:
        if type_ != pa.string():
            raise
    values = [None if v is None else json.dumps(v, default=str, ensure_ascii=False) for v in column.to_pylist()]
    return pa.chunked_array([pa.array(values, pa.string())])


def read_listing(path: str | Path, extras: Iterable[Extra]) -> pa.Table:
    """The listing at ``path``: img2dataset's columns (those it lacks null) as ``string``/``int32``, then ``extras``
    (by ``name``, cast to their ``type``; null where it lacks them).

    Raises ``ValueError`` (or an Arrow error) saying what is wrong for a listing that cannot be read, a size
    out of int32, or a key that is null or listed twice.
    """
    table = pq.read_table(path)
    columns: dict[str, pa.ChunkedArray] = {}
    for name, kind in LISTING_COLUMNS.items():
        type_ = pa.string() if kind == "text" else pa.int32()
        if name not in table.column_names:
            columns[name] = pa.chunked_array([pa.nulls(table.num_rows, type_)])
            continue
        column = _as(table.column(name), type_)  # a size over int32 fails here, as Arrow's safe cast does
        if kind == "size" and pc.any(pc.less(column, 0)).as_py():
            raise ValueError(f"column {name} holds a negative size")
        columns[name] = column
    for extra in extras:
        have = extra.name in table.column_names
        columns[extra.name] = (
            _as(table.column(extra.name), extra.type)
            if have
            else pa.chunked_array([pa.nulls(table.num_rows, extra.type)])
        )
    keys = columns["key"]
    if keys.null_count:
        raise ValueError(f"{keys.null_count} row(s) have no key")
    counts = pc.value_counts(keys)
    twice = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(twice):
        raise ValueError(f"key {twice[0]['values'].as_py()!r} is listed {twice[0]['counts'].as_py()} times")
    return pa.table(columns)


def failure(status: str | None, message: str | None) -> tuple[str, str]:
    """The error kind and detail of a URL img2dataset failed (``status`` not ``success``)."""
    kind = STATUS_KINDS.get(status or "", f"img2dataset_{re.sub(r'[^0-9A-Za-z_]', '_', status or 'unknown')}")
    return kind, message or f"img2dataset status {status!r}"

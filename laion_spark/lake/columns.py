"""Column checks shared by every job: Spark type names of a schema, and the kinds a job asks for.

Types are named the way Spark names them (``string``, ``int``, ``bigint``,
``double`` ...) so that the same check applies to a parquet footer (an Arrow
schema) and to a table's Spark schema.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
from pyspark.sql.types import StructType

from .tables import TableError

#: Column kinds a check can ask for, as the Spark type names that satisfy them.
KINDS = {
    "string": frozenset({"string"}),
    "integer": frozenset({"tinyint", "smallint", "int", "bigint"}),
    "floating": frozenset({"float", "double"}),
    "numeric": frozenset({"tinyint", "smallint", "int", "bigint", "float", "double"}),
}
_ARROW_TO_SPARK = {
    pa.int8(): "tinyint",
    pa.int16(): "smallint",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.float32(): "float",
    pa.float64(): "double",
    pa.bool_(): "boolean",
}


def spark_columns(schema: pa.Schema | StructType) -> dict[str, str]:
    """Column name -> Spark type name of an Arrow schema or a Spark ``StructType``."""
    if isinstance(schema, StructType):
        return {f.name: f.dataType.simpleString() for f in schema.fields}
    out: dict[str, str] = {}
    for f in schema:
        kind = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            out[f.name] = "string"
        else:
            out[f.name] = _ARROW_TO_SPARK.get(kind, f"unsupported<{f.type}>")
    return out


class ColumnError(TableError):
    """A table lacks a column a job needs, or holds it with the wrong type."""


def require_columns(schema: pa.Schema | StructType, required: Mapping[str, str], what: str) -> None:
    """Check that ``schema`` has each ``required`` column (name -> a kind of :data:`KINDS`).

    Raises :class:`ColumnError` naming ``what`` (the table), every missing
    column and every column of the wrong kind, in one line.
    """
    found = spark_columns(schema)
    missing = [name for name in required if name not in found]
    wrong = [
        f"{name} is {found[name]}, expected {kind}"
        for name, kind in required.items()
        if name in found and found[name] not in KINDS[kind]
    ]
    problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + wrong
    if problems:
        raise ColumnError(f"{what}: {'; '.join(problems)}")

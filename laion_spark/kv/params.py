"""The build-kv stage's declaration (no engine or numpy imported)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..stage import FROM_LAKE, ParamError, Stage, param

#: What to do with rows sharing a key: keep the ``first`` (smallest values), the ``max``, or refuse (``error``).
ON_DUPLICATE = ("first", "max", "error")
#: struct codes of the values: float16, float32, float64.
VALUE_CODES = ("e", "f", "d")


def comma_list(text: str) -> tuple[str, ...]:
    """``"pwatermark, punsafe"`` -> ``("pwatermark", "punsafe")``."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True, kw_only=True)
class BuildKV(Stage):
    """Build a static_ondisk_kv file (int64 hash -> float16 values) from a table, sorted by Spark."""

    command: ClassVar[str] = "build-kv"
    job: ClassVar[str] = "laion_spark.kv.build:build_kv"

    table: str = param(help="Delta table, or Parquet folder or file, to read.", table=True)
    value_columns: tuple[str, ...] = param(
        help="Comma-separated value columns, e.g. aesthetic or pwatermark,punsafe.", parse=comma_list
    )
    out: str = param(help="KV file to write (replaced atomically).", path=True)
    value_format: str | None = param(
        None,
        help="struct codes of the values, one per value column: e (float16), f (float32), d (float64); default e "
        "for each. The file does not record it: read it with the format it was built with.",
    )
    key_column: str = param("hash", help="Integer key column.")
    on_duplicate: str = param(
        "max",
        help="Rows sharing a key: first (smallest values), max (largest values; NaN and infinities last), error "
        "(refuse the table).",
        choices=ON_DUPLICATE,
    )
    max_rows_per_range: int = param(
        2_000_000,
        help="Rows per key range, sorted in one task: bounds task memory, and spreads the sort over the cores.",
        minimum=1,
    )
    where: str | None = param(None, help="SQL filter applied first.")
    staging: str | None = param(
        None,
        help="Folder for the per-range fragment files the tasks write; default OUT.staging. On a cluster: a shared "
        "filesystem path the executors write and the driver reads.",
        path=True,
    )
    lake: str | None = param(None, help="Also record the run summary in LAKE/runs.", path=True, pipeline=FROM_LAKE)

    @property
    def record_format(self) -> str:
        """The value format, ``e`` per value column by default."""
        return self.value_format or "e" * len(self.value_columns)

    def check(self) -> None:
        """One known struct code per value column."""
        if not self.value_columns:
            raise ParamError("value_columns", "give at least one value column")
        if any(code not in VALUE_CODES for code in self.record_format):
            raise ParamError(
                "value_format",
                f"value format {self.record_format!r} is not valid: use one of {', '.join(VALUE_CODES)} per value "
                "column (e.g. 'e' for aesthetic, 'ee' for pwatermark, punsafe)",
            )
        if len(self.record_format) != len(self.value_columns):
            raise ParamError(
                "value_format",
                f"value format {self.record_format!r} has {len(self.record_format)} code(s) for "
                f"{len(self.value_columns)} value column(s) {', '.join(self.value_columns)}: give one code per column "
                f"(e.g. {'e' * len(self.value_columns)!r})",
            )

    def inputs(self) -> list[str]:
        """The table."""
        return [self.table]

    def outputs(self) -> list[str]:
        """The KV file."""
        return [self.out]

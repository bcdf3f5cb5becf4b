"""KV build parameters shared by the CLI, the pipeline config and the job (no engine imported)."""

from __future__ import annotations

#: What to do with rows sharing a key: keep the ``first`` (smallest values), the ``max``, or refuse (``error``).
ON_DUPLICATE = ("first", "max", "error")
#: Rows per key range, sorted inside one task: bounds a task's memory (~12 bytes of key and values a row).
DEFAULT_MAX_ROWS_PER_RANGE = 5_000_000

"""The lake: table helpers, column checks, run summaries, LAION's collections and column layouts, and the LAION hash.

Tables read: any lake table, for the jobs (``read_table``). Tables written:
``runs`` (``record_run``: one row per metric of every job run); the other
tables are written by the stages through ``write_table``.
"""

from .._lazy import lazy_exports

__all__ = [
    "COLLECTIONS",
    "KINDS",
    "JOINED_SCHEMA",
    "RUNS_SCHEMA",
    "ColumnError",
    "RunSummary",
    "TableError",
    "TableNotFoundError",
    "WriteConflictError",
    "check_data_files",
    "delta_version",
    "is_delta",
    "is_local",
    "lake_table",
    "laion_hash",
    "lake_sql",
    "raw_schema",
    "read_table",
    "record_run",
    "register_views",
    "require_columns",
    "table_exists",
    "table_path",
    "write_table",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".tables": [
            "TableError",
            "TableNotFoundError",
            "WriteConflictError",
            "check_data_files",
            "delta_version",
            "is_delta",
            "is_local",
            "lake_table",
            "read_table",
            "table_exists",
            "table_path",
            "write_table",
        ],
        ".runs": ["RUNS_SCHEMA", "RunSummary", "record_run"],
        ".collections": ["COLLECTIONS", "JOINED_SCHEMA", "raw_schema"],
        ".hashing": ["laion_hash"],
        ".columns": ["KINDS", "ColumnError", "require_columns"],
        ".sql": ["lake_sql", "register_views"],
    },
    __all__,
)

"""The lake: table helpers, column checks, run summaries, LAION's collections and column layouts, and the LAION hash.

Tables read: any lake table, for the jobs (``read_table``). Tables written:
``runs`` (``record_run``: one row per metric of every job run); the other
tables are written by the stages through ``write_table``.
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".tables": [
            "TableError",
            "TableFeatureError",
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
        ".protocol": ["Protocol", "check_writable", "read_protocol"],
        ".runs": ["RUNS_SCHEMA", "RunSummary", "record_run"],
        ".collections": ["COLLECTIONS", "JOINED_SCHEMA", "raw_schema"],
        ".hashing": ["laion_hash"],
        ".columns": ["KINDS", "ColumnError", "require_columns"],
        ".sql": ["lake_sql", "register_views"],
    },
)

"""The lake: table helpers, the sharded-commit engine, column checks, run summaries, LAION's collections and
column layouts, and the LAION hash.

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
            "TableNotFoundError",
            "WriteConflictError",
            "check_data_files",
            "delta_version",
            "is_delta",
            "read_table",
            "table_exists",
            "write_table",
        ],
        ".protocol": ["Protocol", "TableFeatureError", "check_writable", "read_protocol"],
        ".layout": ["BOOKKEEPING", "COLLECTIONS", "RUNS_TABLE", "STAGES_TABLE", "is_local", "lake_table", "table_path"],
        ".runs": ["RUNS_SCHEMA", "RunSummary", "record_run"],
        ".shard_commits": [
            "CountLedger",
            "Ledger",
            "RecordLedger",
            "ShardCounts",
            "ShardPlan",
            "ShardTable",
            "Verdict",
            "batched",
            "count_shards",
            "map_tasks",
            "plan_shards",
            "unconserved",
        ],
        ".collections": ["JOINED_SCHEMA", "raw_schema"],
        ".hashing": ["laion_hash"],
        ".columns": ["KINDS", "ColumnError", "require_columns"],
        ".sql": ["QueryRefusedError", "ReadOnlyQuery", "lake_sql", "read_only_query", "register_views"],
        ".doctor": ["CHECK_ROWS", "check_engine"],
    },
)

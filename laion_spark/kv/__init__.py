"""LAION's on-disk ``hash -> values`` KV (the ``static_ondisk_kv`` format): file format and reader, build.

Reads: any lake table or parquet with an integer key column and numeric value
columns (``aesthetic_tags``, ``joined`` ...). Writes: a KV file (not a table),
and, when given a lake, the run to ``runs``. Modules: :mod:`.reader` (record
layout, memory-mapped reader), :mod:`.build` (the Spark build), :mod:`.records`
(compiled record packing), :mod:`.order` (key ordering), :mod:`.concatenate`
(joining the build's fragment files).
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".reader": ["KV", "VALUE_CODES", "KVFormatError", "KVNotFoundError", "laion_key", "record_dtype"],
        ".params": ["DEFAULT_MAX_ROWS_PER_RANGE", "ON_DUPLICATE"],
        ".build": [
            "KVBuildError",
            "KVBuildResult",
            "KVInvariantError",
            "build_kv",
        ],
        ".records": ["ValueOverflowError", "write_records"],
    },
)

"""The column layouts the jobs read and write (LAION's collections: :mod:`.layout`)."""

from __future__ import annotations

import pyarrow as pa

#: Raw metadata as published (WIDTH and HEIGHT swapped; LANGUAGE only in laion2B-multi).
RAW_METADATA_SCHEMA = pa.schema(
    [
        ("SAMPLE_ID", pa.int64()),
        ("URL", pa.string()),
        ("TEXT", pa.string()),
        ("HEIGHT", pa.int32()),
        ("WIDTH", pa.int32()),
        ("LICENSE", pa.string()),
        ("LANGUAGE", pa.string()),
        ("NSFW", pa.string()),
        ("similarity", pa.float64()),
    ]
)

#: Columns of the lake's ``joined`` table, in order.
JOINED_SCHEMA = pa.schema(
    [
        ("URL", pa.string()),
        ("TEXT", pa.string()),
        ("WIDTH", pa.int32()),
        ("HEIGHT", pa.int32()),
        ("similarity", pa.float64()),
        ("LANGUAGE", pa.string()),
        ("hash", pa.int64()),
        ("pwatermark", pa.float32()),
        ("punsafe", pa.float32()),
        ("aesthetic", pa.float32()),
        ("collection", pa.string()),
    ]
)

#: Tag tables: the value column of each (the key is always ``hash`` int64).
TAG_VALUE_COLUMNS = {"aesthetic": "aesthetic", "watermark": "pwatermark", "safety": "prediction"}


def raw_schema(collection: str) -> pa.Schema:
    """Raw metadata schema of ``collection`` (LANGUAGE only in laion2B-multi)."""
    if collection == "laion2B-multi":
        return RAW_METADATA_SCHEMA
    return RAW_METADATA_SCHEMA.remove(RAW_METADATA_SCHEMA.get_field_index("LANGUAGE"))

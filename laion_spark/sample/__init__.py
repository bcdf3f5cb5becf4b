"""Deterministic LAION-shaped sample data: raw metadata, tag tables, embedding shards, webdataset tars.

Reads no lake table; writes files only (``metadata/``, ``tags/``, ``embeddings/``,
``webdataset/``, ``heads/`` and the ``sample.json`` manifest under the chosen folder).
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".distribution": ["bucket_counts", "published_proportions"],
        ".embeddings": ["EMBEDDING_METADATA_SCHEMA"],
        ".generator": ["MANIFEST", "generate_sample"],
        ".params": ["DEFAULT_SHARDS", "MIN_ROWS", "SampleError"],
        ".tags": ["TAG_SCHEMAS"],
    },
)

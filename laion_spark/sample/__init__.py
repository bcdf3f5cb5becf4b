"""Deterministic LAION-shaped sample data: raw metadata, tag tables, embedding shards, webdataset tars."""

from .distribution import PUBLISHED_2B_EN, UNIT_BUCKETS, bucket_counts, published_proportions
from .embeddings import EMBEDDING_METADATA_SCHEMA
from .generator import MANIFEST, MIN_ROWS, generate_sample
from .tags import TAG_SCHEMAS

__all__ = [
    "EMBEDDING_METADATA_SCHEMA",
    "MANIFEST",
    "MIN_ROWS",
    "PUBLISHED_2B_EN",
    "TAG_SCHEMAS",
    "UNIT_BUCKETS",
    "bucket_counts",
    "generate_sample",
    "published_proportions",
]

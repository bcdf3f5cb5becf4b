"""Aesthetic scoring with LAION's heads: heads, embedding shards, scoring, distributions, bucket embeddings.

Reads: parquet_npy embedding shards (``img_emb/*.npy`` + ``metadata/*.parquet``),
head files, and the lake table ``aesthetic_tags`` (for ``stats``).
Writes: ``aesthetic_tags`` and ``aesthetic_tags_rejected`` (``score_embeddings``),
``score_distribution`` (``build_score_distribution``), ``aesthetic_embeddings``
(``build_aesthetic_embeddings``) and LAION's ``rating{N}.npy`` files
(``export_aesthetic_embeddings``); every job appends its run to ``runs``.
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".params": [
            "HEADS",
            "REJECTED_TABLE",
            "TAGS_TABLE",
            "AestheticEmbeddings",
            "ExportAestheticEmbeddings",
            "ScoreDistribution",
            "ScoreEmbeddings",
            "head_name",
        ],
        ".buckets": ["BUCKETS", "PUBLISHED_2B_EN", "UNIT_BUCKETS", "format_distribution", "laion_form"],
        ".heads": ["Head", "HeadFormatError", "HeadNotFoundError", "load_head", "resolve_head", "save_linear_head"],
        ".shards": ["Shard", "ShardLayoutError", "discover_shards"],
        ".scoring": ["RefusedShard", "ScoreSummary", "score_embeddings"],
        ".distribution": ["build_score_distribution", "read_score_distribution", "score_distribution"],
        ".bucket_embeddings": [
            "build_aesthetic_embeddings",
            "compute_aesthetic_embeddings",
            "export_aesthetic_embeddings",
            "guide",
        ],
    },
)

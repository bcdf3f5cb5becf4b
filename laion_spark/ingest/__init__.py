"""Ingest LAION metadata, compute the LAION hash and LEFT JOIN the tag tables into ``joined``.

Reads: LAION metadata parquet (raw laion2B-en / laion2B-multi / laion1B-nolang,
or a ``-joined`` variant) and tag tables (aesthetic, watermark, safety; parquet
or Delta, e.g. the lake's ``aesthetic_tags``). Writes: ``joined`` (one partition
per collection) and the run to ``runs``.

Modules: :mod:`.sources` (files, footers, column checks), :mod:`.metadata`
(raw / joined metadata, hash), :mod:`.tags` (tag tables, dedup), :mod:`.job`
(the join, the write, the run summary).
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".job": ["JOB", "JoinInvariantError", "JoinPlan", "join_tags", "plan_join", "run_join"],
        ".params": ["SWAP_CHOICES"],
        ".sources": ["JoinInputError"],
        ".tags": ["TAGS"],
    },
)

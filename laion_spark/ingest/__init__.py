"""Ingest LAION metadata, compute the LAION hash and LEFT JOIN the tag tables into ``<lake>/joined``.

Modules: :mod:`.sources` (files, footers, column checks), :mod:`.metadata`
(raw / joined metadata, hash), :mod:`.tags` (tag tables, dedup), :mod:`.job`
(the join, the write, the run summary).
"""

from .job import JOB, JoinInvariantError, JoinPlan, join_tags, plan_join, run_join
from .metadata import SWAP_CHOICES
from .sources import JoinInputError
from .tags import TAGS

__all__ = [
    "JOB",
    "SWAP_CHOICES",
    "TAGS",
    "JoinInputError",
    "JoinInvariantError",
    "JoinPlan",
    "join_tags",
    "plan_join",
    "run_join",
]

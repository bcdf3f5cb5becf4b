"""The join-tags stage's declaration and its table (no engine imported)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..lake.layout import collection_name_problem, lake_table
from ..stage import FROM_COLLECTION, FROM_LAKE, ParamError, Stage, param

#: The lake table of every collection's metadata joined with its tags, partitioned by ``collection``.
JOINED_TABLE = "joined"
#: Whether to swap raw LAION's WIDTH and HEIGHT back: ``auto`` does it for raw metadata (no ``hash`` column).
SWAP_CHOICES = ("auto", "yes", "no")


@dataclass(frozen=True, kw_only=True)
class JoinTags(Stage):
    """Join a collection's metadata with its aesthetic/watermark/safety tags (LEFT joins: no row dropped).

    Inputs are checked from their parquet footers before any row is read. Tag tables are deduplicated by
    hash keeping the largest value. Re-running a collection replaces only its partition. The run summary is
    printed and appended to LAKE/runs.
    """

    command: ClassVar[str] = "join-tags"
    job: ClassVar[str] = "laion_spark.ingest.job:join_tags"

    metadata: str = param(
        help="LAION metadata: a parquet file or a folder of them (raw, or a -joined variant).",
        path=True,
        pipeline=FROM_COLLECTION,
    )
    collection: str = param(help="Collection name, e.g. laion2B-en: the partition written.", pipeline=FROM_COLLECTION)
    lake: str = param(help="Lake folder; writes LAKE/joined and LAKE/runs.", path=True, pipeline=FROM_LAKE)
    aesthetic_tags: str | None = param(
        None,
        help="Aesthetic tags (hash + aesthetic): parquet, or a Delta table such as LAKE/aesthetic_tags.",
        table=True,
    )
    watermark_tags: str | None = param(
        None, help="Watermark tags (hash + pwatermark); parquet or Delta.", table=True, pipeline=FROM_COLLECTION
    )
    safety_tags: str | None = param(
        None,
        help="Safety tags (hash + prediction, renamed punsafe); parquet or Delta.",
        table=True,
        pipeline=FROM_COLLECTION,
    )
    aesthetic_head: str | None = param(
        None, help="Head to take from an aesthetic tag table holding several (its head column)."
    )
    swap_width_height: str = param(
        "auto",
        help=f"{'|'.join(SWAP_CHOICES)}: fix raw LAION's swapped WIDTH/HEIGHT; auto = when no hash column.",
        choices=SWAP_CHOICES,
    )
    verify_hash: bool = param(False, help="For metadata with a hash column: recompute it and count mismatches.")

    def check(self) -> None:
        """The collection names a partition; a head is only chosen from an aesthetic tag table."""
        problem = collection_name_problem(self.collection)
        if problem is not None:
            raise ParamError("collection", problem)
        if self.aesthetic_head is not None and self.aesthetic_tags is None:
            raise ParamError("aesthetic_head", "a head was chosen but no aesthetic tag table was given")

    def inputs(self) -> list[str]:
        """The metadata and the tag tables given."""
        tags = (self.aesthetic_tags, self.watermark_tags, self.safety_tags)
        return [self.metadata, *(t for t in tags if t is not None)]

    def outputs(self) -> list[str]:
        """The joined table."""
        return [lake_table(self.lake, JOINED_TABLE)]

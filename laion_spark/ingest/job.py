"""The join-tags job: metadata LEFT JOIN deduplicated tags on LAION's hash, into ``<lake>/joined``.

As LAION's ``big_join``: every metadata row is kept, missing tags are null.
Re-running a collection replaces only its partition of ``joined``. The run
summary (rows in/out, rows with null URL and TEXT, rows without each tag, tag
rows dropped as duplicates or for a null hash) goes to ``<lake>/runs``. The
deduplicated tags are computed once into a scratch copy in the lake
(:mod:`laion_spark.lake.scratch`), which the join and the counts both read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..errors import InvariantError
from ..lake.collections import JOINED_SCHEMA
from ..lake.delta_log import partition_stats
from ..lake.layout import lake_table
from ..lake.runs import RunSummary, record_run
from ..lake.scratch import scratch_copy
from ..lake.tables import read_table, write_table
from .metadata import MetadataInput, count_hash_mismatches, inspect_metadata, read_metadata
from .params import JOINED_TABLE, JoinTags
from .sources import JoinInputError
from .tags import TAGS, TagInput, TagSpec, combine_tags, inspect_tag_table, read_tag_table, tag_counts

if TYPE_CHECKING:
    from ..engine.session import LakeSession

JOB = JoinTags.command
_TAG_COLUMNS = tuple(spec.column for spec in TAGS.values())  # aesthetic, pwatermark, punsafe
_SPARK_TYPES = {"string": "string", "int32": "int", "int64": "bigint", "float": "float", "double": "double"}


class JoinInvariantError(InvariantError):
    """The written partition does not hold exactly the metadata's rows."""


@dataclass(frozen=True)
class JoinPlan:
    """Everything a join run needs, validated from file footers before any Spark work."""

    collection: str
    lake_dir: str
    metadata: MetadataInput
    tags: tuple[TagInput, ...]
    verify_hash: bool

    @property
    def joined_path(self) -> str:
        """Where the ``joined`` table lives."""
        return lake_table(self.lake_dir, JOINED_TABLE)


def plan_join(stage: JoinTags) -> JoinPlan:
    """Validate the inputs of ``stage`` (parquet footers only) and return the plan; raises :class:`JoinInputError`."""
    meta = inspect_metadata(stage.metadata, stage.swap_width_height)
    if stage.verify_hash and not meta.joined:
        raise JoinInputError(
            f"metadata {stage.metadata}: verify_hash needs a hash column to verify; this input has none"
        )
    given = {"aesthetic": stage.aesthetic_tags, "watermark": stage.watermark_tags, "safety": stage.safety_tags}
    tags = tuple(
        inspect_tag_table(TAGS[name], path, stage.aesthetic_head if name == "aesthetic" else None)
        for name, path in given.items()
        if path is not None
    )
    return JoinPlan(stage.collection, stage.lake, meta, tags, stage.verify_hash)


def run_join(lake: LakeSession, plan: JoinPlan) -> RunSummary:
    """Join, write ``collection``'s partition of ``joined``, record and return the run summary."""
    summary = RunSummary(JOB, plan.collection, target=JOINED_TABLE)
    tag_frames = read_tags(lake, plan)
    with staged_tags(lake, plan, summary.run_id, tag_frames) as combined:
        write_joined(lake, plan, joined_rows(lake, plan, combined))
        summary.metrics.update({"files_in": len(plan.metadata.files.files), "rows_in": plan.metadata.rows})
        summary.add_counts(*count_queries(lake, plan, tag_frames, combined))
    record_run(lake, plan.lake_dir, summary)
    if summary.metrics["rows_out"] != summary.metrics["rows_in"]:
        raise JoinInvariantError(
            f"{plan.joined_path} [{plan.collection}] holds {summary.metrics['rows_out']} rows, "
            f"the metadata {summary.metrics['rows_in']}",
            summary,
        )
    return summary


def count_queries(
    lake: LakeSession,
    plan: JoinPlan,
    tag_frames: Sequence[tuple[TagSpec, DataFrame]],
    combined: DataFrame | None,
) -> list[Callable[[], dict[str, int]]]:
    """The run summary's count queries once ``plan``'s partition is written, for
    :meth:`~laion_spark.lake.runs.RunSummary.add_counts`: :func:`written_counts`, ``hash_mismatches`` when
    ``plan.verify_hash``, then :func:`~laion_spark.ingest.tags.tag_counts` of each of ``tag_frames`` (``combined``:
    :func:`staged_tags`' frame)."""
    queries: list[Callable[[], dict[str, int]]] = [partial(written_counts, lake, plan)]
    if plan.verify_hash:
        queries.append(lambda: {"hash_mismatches": count_hash_mismatches(lake, plan.metadata)})
    return queries + [partial(tag_counts, spec, df, combined) for spec, df in tag_frames]


def read_tags(lake: LakeSession, plan: JoinPlan) -> list[tuple[TagSpec, DataFrame]]:
    """Each tag table of ``plan`` with its kind: ``hash, <tag column>`` rows of the collection, not yet
    deduplicated; raises :class:`JoinInputError` for a table that cannot be read."""
    return [(tag.spec, read_tag_table(lake, tag, plan.collection)) for tag in plan.tags]


@contextmanager
def staged_tags(
    lake: LakeSession, plan: JoinPlan, run_id: str, tag_frames: Sequence[tuple[TagSpec, DataFrame]]
) -> Iterator[DataFrame | None]:
    """:func:`~laion_spark.ingest.tags.combine_tags` of ``tag_frames`` (:func:`read_tags`), computed once into a
    scratch copy in ``plan``'s lake for run ``run_id`` and read back while the block runs (``None`` without tag
    tables): the join and the counts read the same deduplicated rows."""
    if not tag_frames:
        yield None
        return
    with scratch_copy(lake, plan.lake_dir, JOB, run_id, combine_tags(tag_frames)) as combined:
        yield combined


def joined_rows(lake: LakeSession, plan: JoinPlan, combined: DataFrame | None) -> DataFrame:
    """``plan``'s metadata LEFT JOIN ``combined`` (the deduplicated tags, from
    :func:`~laion_spark.ingest.tags.combine_tags`; ``None`` without tag tables) on ``hash``, in ``joined``'s
    columns: the rows :func:`write_joined` writes, one per metadata row."""
    joined = read_metadata(lake, plan.metadata)
    if combined is not None:
        # Every hash of the copy is non-null: the filter is for Sail's planner, which builds the join's hash table
        # from the input it estimates smaller and so takes the (filtered) tags, not the metadata, whose URLs and
        # captions it would hold in memory (8M rows: 3.0 GB peak instead of 1.8 GB).
        values = combined.where(F.col("hash").isNotNull())
        joined = joined.drop(*[c for c in values.columns if c != "hash"]).join(values, on="hash", how="left")
    present = set(joined.columns)
    return joined.select(
        *[
            (F.col(f.name) if f.name in present else F.lit(None)).cast(_SPARK_TYPES[str(f.type)]).alias(f.name)
            for f in JOINED_SCHEMA
            if f.name != "collection"
        ],
        F.lit(plan.collection).alias("collection"),
    )


def write_joined(lake: LakeSession, plan: JoinPlan, rows: DataFrame) -> None:
    """Write ``rows`` (:func:`joined_rows`) as ``plan.collection``'s partition of ``joined``, replacing the one a
    previous run wrote."""
    write_table(
        lake, rows, plan.joined_path, partition_by=["collection"], replace_partition={"collection": plan.collection}
    )


def join_tags(lake: LakeSession, stage: JoinTags) -> RunSummary:
    """Join ``stage.collection``'s metadata with its tag tables into ``<stage.lake>/joined``
    (:class:`~laion_spark.ingest.params.JoinTags` lists the parameters).

    Returns the run summary; raises :class:`JoinInputError` on bad input and
    :class:`JoinInvariantError` when rows are not conserved.
    """
    return run_join(lake, plan_join(stage))


def written_counts(lake: LakeSession, plan: JoinPlan) -> dict[str, int]:
    """Counts over ``plan.collection``'s partition of ``joined`` as written (so they describe what is in the lake):
    ``rows_out``, ``rows_null_url_and_text``, ``rows_null_hash`` and ``rows_without_<tag>`` for each tag column.

    Rows, and rows without a hash or a tag, come from the Delta log's statistics of the partition's files
    (:func:`~laion_spark.lake.delta_log.partition_stats`) where every file has them, as a Delta reader
    answers ``count(*)``; the partition is read only for what they cannot say: rows with neither URL nor
    TEXT, when some file has nulls in both columns. Without statistics (a Parquet lake, a URI) every count
    reads the partition.
    """
    names = ["rows_out", "rows_null_url_and_text", "rows_null_hash", *[f"rows_without_{t}" for t in _TAG_COLUMNS]]
    written = read_table(lake, plan.joined_path).where(F.col("collection") == plan.collection)
    no_url_and_text = F.col("URL").isNull() & F.col("TEXT").isNull()
    files = partition_stats(plan.joined_path, {"collection": plan.collection}, ["URL", "TEXT", "hash", *_TAG_COLUMNS])
    if files is None:
        row = written.agg(
            F.count(F.lit(1)),
            F.count(F.when(no_url_and_text, 1)),
            *[F.count(F.when(F.col(column).isNull(), 1)) for column in ("hash", *_TAG_COLUMNS)],
        ).collect()[0]
        return dict(zip(names, (int(v) for v in row), strict=True))
    both = written.where(no_url_and_text).count() if any(f.nulls["URL"] and f.nulls["TEXT"] for f in files) else 0
    nulls = [sum(f.nulls[column] for f in files) for column in ("hash", *_TAG_COLUMNS)]
    return dict(zip(names, [sum(f.rows for f in files), both, *nulls], strict=True))

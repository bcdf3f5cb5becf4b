"""Score precomputed CLIP embedding shards with a LAION aesthetic head.

The job reads the parquet_npy layout (:mod:`laion_spark.aesthetic.shards`) and
writes two lake tables under ``lake_dir``:

* ``aesthetic_tags``: ``hash long, aesthetic float, collection string, shard int,
  head string``, partitioned by ``head`` then ``collection``;
* ``aesthetic_tags_rejected``: ``hash long, collection string, shard int, head
  string, row long, reason string`` (same partitions): rows whose embedding is
  ``non_finite`` (NaN/inf) or ``all_zero``, which have no score.

``head`` is the head's name: ``laion-v1-l14`` ... for a named head or a file
named like a published one, the file's stem for any other ``.pth`` path. Being partition columns, ``head`` and ``collection``
come last when the tables are read; select columns by name.

How it runs (the commit mechanism is :mod:`laion_spark.lake.shard_commits`; this
module reads shards, scores them and says what each table gets):

* Planning (driver, file headers only): every shard's ``.npy`` header and
  metadata footer are read; a shard whose row counts differ, whose width is not
  the head's, or whose metadata lacks ``url``/``caption`` is *refused* with its
  reason (reported in the summary; the CLI exits non-zero after scoring the
  good shards). Embeddings never pass through the driver.
* Scoring: shards are committed in groups of ``shards_per_commit``; a group is
  one task per shard, which memory-maps the shard's ``.npy``, scores it in chunks
  with :meth:`Head.score` and hashes ``url + caption`` with :func:`laion_hash`. One
  Delta commit per group (after the table's empty creation), replacing the
  group's shards (``replaceWhere shard IN ...``): a rerun or a concurrent run of
  the same shards leaves one copy of their rows, and a crash loses at most the group in
  flight.
* Rejected rows: the scoring pass keeps only rows with a finite score (one
  pass cannot feed two tables without computing twice: ``persist`` is a no-op
  on Sail). Shards that come out short are read again (no second pass at all
  when rows are clean); their rejected rows (hash, row, reason: no embeddings) come back to
  the driver, are checked to complete the shard (``scored + rejected ==
  rows``, else the shard changed since it was scored and is refused) and are
  committed at the end, in one commit replacing those shards' rejected rows.
* Resume: the tables are the ledger. A rerun counts, per shard, the rows already
  in both tables: shards whose rows add up are skipped, shards with none are
  scored. For the others (a crash between the two commits) the rejected rows are
  computed before anything is written: a shard whose every table holds none or all
  of its rows gets only what it lacks; one whose lake rows disagree with its file
  is refused rather than mixed. ``overwrite`` rescores everything and replaces the
  head + collection partitions at the first commit of each table.
* Conservation: a shard's rows are its metadata rows; every shard scored has
  ``scored + rejected == rows`` in the tables, and the summary satisfies
  ``rows_in = rows_skipped + rows_scored + rows_rejected + rows_refused``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from ..errors import InvariantError
from ..lake.hashing import laion_hash
from ..lake.layout import lake_table
from ..lake.runs import RunSummary, record_run
from ..lake.shard_commits import (
    CountLedger,
    ShardCounts,
    ShardPlan,
    ShardTable,
    Verdict,
    batched,
    count_shards,
    map_tasks,
    plan_shards,
    unconserved,
)
from ..lake.tables import write_table
from .heads import Head, load_head
from .params import REJECTED_TABLE, TAGS_TABLE, ScoreEmbeddings
from .shards import Shard, ShardLayoutError, discover_shards

if TYPE_CHECKING:
    from ..engine.session import LakeSession

JOB = "score-embeddings"
_log = logging.getLogger(__name__)
PARTITION_BY = ("head", "collection")
TAGS_COLUMNS = ("hash", "aesthetic", "collection", "shard", "head")
#: Rows scored at once inside a task (bounds a task's memory: ~100 MB of float32 at d=768).
CHUNK_ROWS = 32_768
REASON_NON_FINITE = "non_finite"
REASON_ALL_ZERO = "all_zero"

_SCORED_ARROW = pa.schema([("hash", pa.int64()), ("aesthetic", pa.float32()), ("shard", pa.int32())])
_REJECTED_ARROW = pa.schema([("hash", pa.int64()), ("shard", pa.int32()), ("row", pa.int64()), ("reason", pa.string())])
_SCORED_DDL = "hash long, aesthetic float, shard int"
#: Columns of ``aesthetic_tags_rejected``.
REJECTED_ARROW = pa.schema(
    [
        ("hash", pa.int64()),
        ("collection", pa.string()),
        ("shard", pa.int32()),
        ("head", pa.string()),
        ("row", pa.int64()),
        ("reason", pa.string()),
    ]
)
_REJECTED_DDL = "hash long, shard int, row long, reason string"
_METADATA_COLUMNS = ("url", "caption")
#: Position of ``aesthetic_tags`` among the job's output tables (then ``aesthetic_tags_rejected``).
_TAGS = 0


@dataclass(frozen=True)
class ShardTask:
    """What a task needs to score one shard: its number, file paths and row count (no data)."""

    index: int
    npy: str
    metadata: str
    rows: int


@dataclass(frozen=True)
class RefusedShard:
    """A shard that was not scored, and why."""

    index: int
    npy: str
    rows: int
    reason: str


@dataclass
class ScoreSummary(RunSummary):
    """Run summary of :func:`score_embeddings`, plus the head used and the refused shards."""

    head: str = ""
    refused: list[RefusedShard] = field(default_factory=list)

    def format(self) -> str:
        """The counts, then one line per refused shard."""
        lines = [super().format(), f"  head {self.head}"]
        lines += [f"  refused shard {r.index} ({r.npy}): {r.reason}" for r in self.refused]
        return "\n".join(lines)


def inspect_shard(shard: Shard, dim: int) -> ShardTask | RefusedShard:
    """Check a shard from its file headers only: row counts agree, width is ``dim``, metadata has url/caption."""
    try:
        shape = shard.shape()
        footer = pq.ParquetFile(shard.metadata)
        names = footer.schema_arrow.names
    except (OSError, ValueError, pa.ArrowException) as err:
        return RefusedShard(shard.index, shard.npy, 0, f"unreadable: {err}")
    n_meta = footer.metadata.num_rows
    missing = [c for c in _METADATA_COLUMNS if c not in names]
    if missing:
        reason = f"{Path(shard.metadata).name} lacks column(s) {', '.join(missing)}"
    elif len(shape) != 2:
        reason = f"{Path(shard.npy).name} has shape {shape}, expected (rows, {dim})"
    elif shape[0] != n_meta:
        reason = f"{Path(shard.npy).name} has {shape[0]} rows but {Path(shard.metadata).name} has {n_meta}"
    elif shape[1] != dim:
        reason = f"embedding width {shape[1]} does not match the head's {dim}"
    else:
        return ShardTask(shard.index, shard.npy, shard.metadata, n_meta)
    return RefusedShard(shard.index, shard.npy, n_meta, reason)


def _scored_chunks(task: ShardTask, head: Head) -> Iterator[tuple[int, pa.RecordBatch, np.ndarray, np.ndarray]]:
    """(first row, url/caption batch, embeddings, float32 scores) per chunk of one shard, aligned row for row."""
    embeddings = np.load(task.npy, mmap_mode="r")
    metadata = pq.ParquetFile(task.metadata)
    if embeddings.ndim != 2 or embeddings.shape[0] != metadata.metadata.num_rows:
        raise ShardLayoutError(
            f"{task.npy} (shape {embeddings.shape}) and {task.metadata} ({metadata.metadata.num_rows} rows) "
            "no longer align; refusing to score them"
        )
    offset = 0
    for batch in metadata.iter_batches(batch_size=CHUNK_ROWS, columns=list(_METADATA_COLUMNS)):
        chunk = embeddings[offset : offset + batch.num_rows]
        yield offset, batch, chunk, head.score(chunk)
        offset += batch.num_rows


def _score_shard(task: ShardTask, *, head: Head) -> Iterator[pa.RecordBatch]:
    """A task of :func:`~laion_spark.lake.shard_commits.map_tasks`: the shard's rows with a finite score."""
    for _, meta, _, scores in _scored_chunks(task, head):
        hashes = laion_hash(meta.column("url"), meta.column("caption"))
        keep = np.isfinite(scores)
        if not keep.all():
            hashes, scores = hashes[keep], scores[keep]
        shard = np.full(len(scores), task.index, dtype=np.int32)
        yield pa.RecordBatch.from_arrays([pa.array(hashes), pa.array(scores), pa.array(shard)], schema=_SCORED_ARROW)


def _reject_shard(task: ShardTask, *, head: Head) -> Iterator[pa.RecordBatch]:
    """A task of :func:`~laion_spark.lake.shard_commits.map_tasks`: the shard's rows without a finite score,
    with the reason.

    A unit-normalised score is non-finite exactly when the row holds NaN/inf
    (``non_finite``) or is all zeros (``all_zero``, norm 0).
    """
    for offset, meta, chunk, scores in _scored_chunks(task, head):
        bad = np.flatnonzero(~np.isfinite(scores))
        if not len(bad):
            continue
        picked = meta.take(pa.array(bad))
        non_finite = ~np.isfinite(chunk[bad]).all(axis=1)
        reason = np.where(non_finite, REASON_NON_FINITE, REASON_ALL_ZERO)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(laion_hash(picked.column("url"), picked.column("caption"))),
                pa.array(np.full(len(bad), task.index, dtype=np.int32)),
                pa.array((offset + bad).astype(np.int64)),
                pa.array(reason.tolist(), pa.string()),
            ],
            schema=_REJECTED_ARROW,
        )


def scored_frame(lake: LakeSession, tasks: Sequence[ShardTask], head: Head, collection: str) -> DataFrame:
    """The ``aesthetic_tags`` rows of ``tasks`` (finite scores only), computed in executors."""
    scored = map_tasks(lake, tasks, partial(_score_shard, head=head), _SCORED_DDL)
    return _with_keys(scored, head, collection).select(*TAGS_COLUMNS)


def rejected_frame(lake: LakeSession, tasks: Sequence[ShardTask], head: Head, collection: str) -> DataFrame:
    """The ``aesthetic_tags_rejected`` rows of ``tasks``, computed in executors."""
    rejected = map_tasks(lake, tasks, partial(_reject_shard, head=head), _REJECTED_DDL)
    return _with_keys(rejected, head, collection).select(*REJECTED_ARROW.names)


def _with_keys(df: DataFrame, head: Head, collection: str) -> DataFrame:
    return df.withColumn("collection", F.lit(collection)).withColumn("head", F.lit(head.name))


def _rejected_rows(lake: LakeSession, tasks: Sequence[ShardTask], head: Head, collection: str) -> pa.Table:
    """The rejected rows of ``tasks`` in the driver (hash, row, reason: no embeddings); empty for no task."""
    if not tasks:
        return REJECTED_ARROW.empty_table()
    return rejected_frame(lake, tasks, head, collection).toArrow().cast(REJECTED_ARROW)


def score_embeddings(lake: LakeSession, stage: ScoreEmbeddings) -> ScoreSummary:
    """Score every shard under ``stage.embeddings`` with ``stage.head`` into ``<stage.lake>/aesthetic_tags``
    (:class:`~laion_spark.aesthetic.params.ScoreEmbeddings` lists the parameters).

    ``collection`` defaults to the embeddings folder's name. Returns the run
    summary (also appended to ``<lake>/runs``).

    Shards refused while planning (from their file headers, or because the lake
    holds a different number of their rows) raise
    :class:`~laion_spark.aesthetic.shards.ShardLayoutError` naming the first,
    before anything is written; with ``skip_refused`` they are quarantined
    instead: listed in ``summary.refused``, counted in ``rows_refused``, and the
    good shards are scored. Also raises ``ShardLayoutError`` for a folder that
    is not a parquet_npy layout, the head errors of :func:`load_head`, and
    :class:`~laion_spark.errors.InvariantError` (after recording the run) when
    a shard's rows changed while it was scored.
    """
    head, lake_dir = load_head(stage.head), stage.lake
    collection = stage.collection or Path(stage.embeddings).resolve().name
    scope = {"head": head.name, "collection": collection}
    tags, rejected = (
        ShardTable(lake_table(lake_dir, name), scope, PARTITION_BY) for name in (TAGS_TABLE, REJECTED_TABLE)
    )
    summary = ScoreSummary(job=JOB, collection=collection, head=head.name, target=TAGS_TABLE)
    inspected = [inspect_shard(shard, head.dim) for shard in discover_shards(stage.embeddings)]
    summary.refused = [p for p in inspected if isinstance(p, RefusedShard)]
    good = [p for p in inspected if isinstance(p, ShardTask)]
    plan, completing = _plan(lake, (tags, rejected), good, head, collection, stage.overwrite)
    summary.refused += [_changed_since_scored(task, *plan.held.of(task.index)) for task in plan.refused]
    if summary.refused and not stage.skip_refused:
        first = summary.refused[0]
        raise ShardLayoutError(
            f"{stage.embeddings}: {len(summary.refused)} of {len(inspected)} shard(s) refused, first shard {first.index} "
            f"({first.npy}): {first.reason}; nothing was scored (--skip-refused scores the others)"
        )

    _score_groups(
        lake, tags, plan.lacking(plan.todo, _TAGS), head, collection, stage.shards_per_commit, stage.overwrite
    )
    scored_after = tags.counts(lake)
    handled, changed, rejected_rows = _check_rows(lake, plan, completing, scored_after, head, collection)
    summary.refused.extend(changed)
    if rejected_rows.num_rows or stage.overwrite:
        write_table(
            lake,
            lake.spark.createDataFrame(rejected_rows, from_arrow_schema(REJECTED_ARROW)),
            rejected.path,
            **rejected.commit_args(handled, whole=stage.overwrite),
        )

    summary.metrics = {
        "shards_total": len(inspected),
        "shards_skipped": len(plan.skipped),
        "shards_scored": len(handled),
        "shards_refused": len(summary.refused),
        "rows_in": sum(p.rows for p in inspected),
        "rows_skipped": sum(t.rows for t in plan.skipped),
        "rows_scored": sum(scored_after.get(t.index, 0) for t in handled),
        "rows_rejected": rejected_rows.num_rows,
        "rows_refused": sum(r.rows for r in summary.refused),
    }
    record_run(lake, lake_dir, summary)
    for refused in summary.refused:
        _log.warning("skipped refused shard %d (%s): %s", refused.index, refused.npy, refused.reason)
    if changed:
        raise InvariantError(
            f"{len(changed)} shard(s) changed while they were scored, first shard {changed[0].index} "
            f"({changed[0].npy}): {changed[0].reason}",
            summary,
        )
    return summary


def _plan(
    lake: LakeSession,
    tables: tuple[ShardTable, ShardTable],
    tasks: list[ShardTask],
    head: Head,
    collection: str,
    overwrite: bool,
) -> tuple[ShardPlan[ShardTask], pa.Table]:
    """What the run does with each shard, and the rejected rows of the shards the lake holds part of.

    Complete shards (scored + rejected rows in the lake = the shard's rows) are skipped; shards with no row
    in the lake (every shard with ``overwrite``) are scored. The others (a crash between the two commits)
    have their rejected rows computed before anything is written: a shard whose tables each hold none or all
    of its rows is completed with what it lacks, others are refused (changed since they were scored).
    """
    held = ShardCounts(({}, {})) if overwrite else count_shards(lake, tables)
    plan = plan_shards(lake, tasks, held, CountLedger({t.index: t.rows for t in tasks}))
    completing = _rejected_rows(lake, plan.partial, head, collection)
    rejected = Counter(completing.column("shard").to_pylist())
    expected = {t.index: (t.rows - rejected[t.index], rejected[t.index]) for t in plan.partial}
    return plan.settle(expected), completing


def _score_groups(
    lake: LakeSession,
    tags: ShardTable,
    tasks: Sequence[ShardTask],
    head: Head,
    collection: str,
    shards_per_commit: int,
    overwrite: bool,
) -> None:
    """Score ``tasks`` into ``tags``, one commit per group replacing the group's shards (with ``overwrite``,
    the first commit replaces the whole head + collection partition)."""
    whole = overwrite
    for group in batched(tasks, shards_per_commit):
        write_table(
            lake,
            scored_frame(lake, group, head, collection),
            tags.path,
            **tags.commit_args(group, whole=whole),
        )
        whole = False


def _check_rows(
    lake: LakeSession,
    plan: ShardPlan[ShardTask],
    completing: pa.Table,
    scored: dict[int, int],
    head: Head,
    collection: str,
) -> tuple[list[ShardTask], list[RefusedShard], pa.Table]:
    """The shards of ``plan.todo`` whose ``scored`` rows (in the lake) and rejected rows add up to their rows,
    those that do not (changed while they were scored), and the rejected rows of the first.

    The rejected rows of resumed shards are ``completing`` (computed while planning); fresh shards that came
    out short are read again (no second pass at all when rows are clean).
    """
    short = [t for t in plan.having(Verdict.FRESH) if scored.get(t.index, 0) < t.rows]
    rejected_rows = pa.concat_tables([completing, _rejected_rows(lake, short, head, collection)])
    rejected = Counter(rejected_rows.column("shard").to_pylist())
    expected = {t.index: (t.rows - rejected[t.index], rejected[t.index]) for t in plan.todo}
    wrong = set(unconserved(expected, ShardCounts((scored, rejected))))
    handled = [t for t in plan.todo if t.index not in wrong]
    changed = [
        _changed_since_scored(t, scored.get(t.index, 0), rejected[t.index]) for t in plan.todo if t.index in wrong
    ]
    kept = pc.is_in(rejected_rows.column("shard"), pa.array([t.index for t in handled], pa.int32()))
    return handled, changed, rejected_rows.filter(kept)


def _changed_since_scored(task: ShardTask, scored: int, rejected: int) -> RefusedShard:
    reason = (
        f"the lake holds {scored} scored and {rejected} rejected rows of this shard but it has {task.rows} rows "
        "(changed since it was scored?); rerun with --overwrite"
    )
    return RefusedShard(task.index, task.npy, task.rows, reason)

"""The CLIP jobs: ``score-images`` (tars -> embeddings -> aesthetic scores) and ``embed-text``.

``score_images`` appends to three lake tables under ``lake_dir``, each partitioned by ``head`` then
``collection`` (partition columns come last when read; select by name), and creates each one empty when a
run gives it no row, so that every table is there after any successful run (Delta lakes; a Parquet lake
keeps no file for an empty table):

* ``image_aesthetic_tags``: ``hash long, aesthetic float, key string, shard long, url string, caption string,
  WIDTH int, HEIGHT int, sha256 string, status string``, then img2dataset's additional columns (``similarity``,
  ``LANGUAGE`` ...: :mod:`~laion_spark.clip.listing`), then ``model string, source string, head string,
  collection string`` -- one row per embedded image; ``WIDTH``/``HEIGHT`` are LAION's: the image's size as
  downloaded (img2dataset's ``original_width``/``original_height``); ``source`` is ``images`` and ``model``
  the model spec: these scores came from pixels with that model, unlike ``aesthetic_tags``;
* ``image_errors``: ``hash long, key string, url string, caption string, error string, kind string, status
  string, error_message string, shard long, model string, head string, collection string`` -- one row per
  URL or sample that has no score: failed in the tar (``truncated_image``, ``missing_caption`` ...) or
  before it (img2dataset's ``status`` and ``error_message``: kinds ``not_downloaded``, ``not_resized``);
* ``image_tars``: ``shard long, tar string, size long, mtime_ns long, rows long, embedded long, failed long,
  failed_before_tar long, listing string, model string, run_id string, embeddings string, head string,
  collection string`` -- one row per finished tar (the ledger).

``hash`` is LAION's hash of ``url + caption`` (url from img2dataset's record, caption from ``KEY.txt``).

A tar's identity is its resolved path, its size and its modification time (ns): a ``stat``, no byte read, so
that planning a run over hundreds of thousands of tars costs nothing (a content digest would read every tar
on the driver at every run, as much again as the scoring reads). Its ``shard`` number is derived from the
path (:func:`tar_number`: 63 bits of a SHA-256, so that two tars of a lake never share one), stable as long
as the tar stays where it is; the size and time say which version of it was scored. A tar moved or copied
elsewhere is a new tar. Rows in: when a tar has img2dataset's listing beside it (``NNNNN.parquet``), its
rows are the listing's URLs (plus any tar sample it does not list); else the tar's samples.

How it runs (the commit mechanism is :mod:`laion_spark.lake.shard_commits`): tars are scored in groups
of ``tars_per_commit``; a group is one task per tar (:func:`~laion_spark.clip.images.score_tar_task`),
which reads its tar and listing, embeds, scores, and writes the tar's embedding shard and its rows to a
staging file (``lake_dir/_staging/score-images/<digest>/rows_<version>.parquet``). The driver then commits
the group's rows to ``image_aesthetic_tags`` and ``image_errors`` and, last, its tars to ``image_tars``,
then removes the staging files. The inference runs once; the lake commits read the staged rows.

Resume: ``image_tars`` is the ledger, keyed by :data:`TAR_KEY` (the tar's identity): a tar recorded there
(same model, head and collection) is finished and skipped. A tar killed between the commits of its group
has its rows staged still: only the commits it lacks are made (its rows in the lake must be none or all of
its staged rows), so every tar is in each table exactly once. A finished tar whose file changed since (other
size or time) is refused, naming it, before anything is written; ``--force`` scores the given tars again
and replaces exactly their rows in the three tables (Delta lakes). A lake written before tars had an
identity is refused too (its shard numbers were positions in a sorted list). Conservation: for every tar
``rows = embedded + failed``, and after the run the tables hold exactly those counts
(:class:`~laion_spark.errors.InvariantError` otherwise).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from ..aesthetic.heads import Head, load_head
from ..errors import InputError, InvariantError
from ..lake.columns import require_columns, spark_columns
from ..lake.layout import SCRATCH_FOLDER, is_local, lake_table, table_path
from ..lake.runs import RunSummary, record_run
from ..lake.shard_commits import (
    RecordLedger,
    ShardPlan,
    ShardTable,
    Verdict,
    batched,
    count_shards,
    map_tasks,
    plan_shards,
    unconserved,
)
from ..lake.tables import read_table, table_exists, write_table
from .images import SUMMARY_DDL, ImageJob, TarTask, score_tar_task
from .listing import Extra, extras_of, listing_of, listing_schema, stats_count, stats_of
from .model import ModelSpec
from .params import (
    IMAGE_ERRORS_TABLE,
    IMAGE_TAGS_TABLE,
    IMAGE_TARS_TABLE,
    SOURCE_IMAGES,
    EmbedText,
    ScoreImages,
)
from .progress import RunProgress
from .reader import error_kind
from .text import embed_text_frame
from .writer import claim_number, claims, shard_files

if TYPE_CHECKING:
    from ..engine.session import LakeSession

SCORE_JOB = "score-images"
TEXT_JOB = "embed-text"
PARTITION_BY = ("head", "collection")
#: ``image_aesthetic_tags`` before the additional columns (which go between ``status`` and ``model``).
TAGS_SCHEMA = pa.schema(
    [
        ("hash", pa.int64()),
        ("aesthetic", pa.float32()),
        ("key", pa.string()),
        ("shard", pa.int64()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("WIDTH", pa.int32()),
        ("HEIGHT", pa.int32()),
        ("sha256", pa.string()),
        ("status", pa.string()),
        ("model", pa.string()),
        ("source", pa.string()),
        ("head", pa.string()),
        ("collection", pa.string()),
    ]
)
_TAGS_TAIL = 4  # model, source, head, collection
ERRORS_SCHEMA = pa.schema(
    [
        ("hash", pa.int64()),
        ("key", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("error", pa.string()),
        ("kind", pa.string()),
        ("status", pa.string()),
        ("error_message", pa.string()),
        ("shard", pa.int64()),
        ("model", pa.string()),
        ("head", pa.string()),
        ("collection", pa.string()),
    ]
)
TARS_SCHEMA = pa.schema(
    [
        ("shard", pa.int64()),
        ("tar", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("rows", pa.int64()),
        ("embedded", pa.int64()),
        ("failed", pa.int64()),
        ("failed_before_tar", pa.int64()),
        ("listing", pa.string()),
        ("model", pa.string()),
        ("run_id", pa.string()),
        ("embeddings", pa.string()),
        ("head", pa.string()),
        ("collection", pa.string()),
    ]
)
#: The columns of ``image_tars`` that identify a tar (the ledger's key; :func:`_tar_key` gives a task's values).
TAR_KEY = ("shard", "tar", "size", "mtime_ns")
_GLOB_CHARS = "*?["


class ShardsError(InputError):
    """The tars given to ``score-images`` are missing, not files, changed, or cannot be scored as asked."""


@dataclass
class ImageScoreSummary(RunSummary):
    """Run summary of :func:`score_images`, with the model and head used."""

    model: str = ""
    head: str = ""

    def format(self) -> str:
        """The counts, then the model and head."""
        return "\n".join([super().format(), f"  model {self.model}", f"  head {self.head}"])


@dataclass
class _Staged:
    """A tar whose rows are staged: counts of embedded and failed rows (``before``: failed before the tar, by
    img2dataset) and the failures' kinds."""

    embedded: int
    failed: int
    before: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        """The tar's rows: embedded and failed."""
        return self.embedded + self.failed

    @property
    def split(self) -> tuple[int, int]:
        """The rows the tar gives ``image_aesthetic_tags`` and ``image_errors``."""
        return self.embedded, self.failed


def resolve_tars(shards: str | Path | Sequence[str | Path]) -> list[Path]:
    """The tar files named by a glob (``DIR/*.tar``, ``**`` allowed) or a list of paths, resolved, sorted, unique.

    Raises :class:`ShardsError` for a glob that matches nothing, a folder, or a path that is not a file.
    """
    if isinstance(shards, (str, Path)):
        pattern = str(Path(str(shards)).expanduser())
        if Path(pattern).is_dir():
            raise ShardsError(f"--shards {shards}: is a folder; give a glob such as {Path(pattern) / '*.tar'}")
        found = glob.glob(pattern, recursive=True) if any(c in pattern for c in _GLOB_CHARS) else [pattern]
        if not found or not any(Path(p).exists() for p in found):
            raise ShardsError(f"--shards {shards}: matched no file")
        paths = [Path(p) for p in found if not Path(p).is_dir()]
    else:
        paths = [Path(p).expanduser() for p in shards]
        if not paths:
            raise ShardsError("no tar shards given")
    for path in paths:
        if not path.is_file():
            raise ShardsError(f"tar shard {path}: not a file")
    if not paths:
        raise ShardsError(f"--shards {shards}: matched folders only")
    return sorted({p.resolve() for p in paths})


def tar_number(path: str | Path) -> int:
    """The shard number of the tar at ``path`` (resolved): the first 63 bits of the SHA-256 of its path.

    The same tar has the same number in every run and lake; two tars would share one with a chance of about
    n^2 / 2^64 (nil for any real lake; a run refuses one that does, naming both).
    """
    return int.from_bytes(hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).digest()[:8], "big") >> 1


def describe_tars(tars: Sequence[Path]) -> list[TarTask]:
    """A task per tar: its identity (path, size, modification time), shard number and img2dataset listing."""
    tasks = []
    for path in tars:
        stat = os.stat(path)
        listing = listing_of(path)
        tasks.append(TarTask(tar_number(path), str(path), stat.st_size, stat.st_mtime_ns, listing and str(listing)))
    numbers = Counter(t.index for t in tasks)
    if len(numbers) != len(tasks):
        twins = [t.path for t in tasks if numbers[t.index] > 1]
        raise ShardsError(f"tars {twins[0]} and {twins[1]} have the same shard number; rename one of them")
    return tasks


def _tar_key(task: TarTask) -> tuple[int, str, int, int]:
    """A tar's key in ``image_tars`` (its columns are :data:`TAR_KEY`): its shard number and identity."""
    return (task.index, task.path, task.size, task.mtime_ns)


class _Tables(NamedTuple):
    """The tables of a run: ``image_aesthetic_tags`` and ``image_errors`` (appended: a tar's rows are committed
    only where the lake lacks them; replaced for ``--force``) and the ``image_tars`` ledger, each with the run's
    model, head and collection, and the schema a table must have (the tags' with the run's additional columns)."""

    tags: ShardTable
    errors: ShardTable
    ledger: RecordLedger[TarTask]
    schemas: tuple[pa.Schema, pa.Schema, pa.Schema]

    @classmethod
    def of(cls, lake_dir: str | Path, scope: dict[str, str], extras: Sequence[Extra]) -> _Tables:
        """The tables under ``lake_dir``, with the rows of ``scope`` and the tags' additional columns ``extras``."""
        tags, errors, tars = (
            ShardTable(lake_table(lake_dir, name), scope, PARTITION_BY, replace=False)
            for name in (IMAGE_TAGS_TABLE, IMAGE_ERRORS_TABLE, IMAGE_TARS_TABLE)
        )
        head, tail = list(TAGS_SCHEMA)[:-_TAGS_TAIL], list(TAGS_SCHEMA)[-_TAGS_TAIL:]
        tags_schema = pa.schema([*head, *[(e.column, e.type) for e in extras], *tail])
        ledger = RecordLedger(tars, TAR_KEY, ("embedded", "failed"), _tar_key)
        return cls(tags, errors, ledger, (tags_schema, ERRORS_SCHEMA, TARS_SCHEMA))

    @property
    def outputs(self) -> tuple[ShardTable, ShardTable]:
        """The output tables, in commit order (the ledger is committed last)."""
        return self.tags, self.errors

    @property
    def all(self) -> tuple[ShardTable, ShardTable, ShardTable]:
        """The three tables, in the order of :attr:`schemas`."""
        return self.tags, self.errors, self.ledger.table


def _check_tables(lake: LakeSession, tables: _Tables, lake_dir: str | Path) -> None:
    """Refuse (:class:`ShardsError`) a lake whose tables predate tar identities, or whose columns have other types
    than this run's (an additional column of another type)."""
    for table, schema in zip(tables.all, tables.schemas, strict=True):
        if not table_exists(lake, table.path):
            continue
        have = {k.lower(): v for k, v in spark_columns(read_table(lake, table.path).schema).items()}
        want = spark_columns(schema)
        base = spark_columns(TAGS_SCHEMA if table is tables.tags else schema)
        stale = [c for c, t in base.items() if have.get(c.lower()) != t]
        if stale:
            raise ShardsError(
                f"{table.path}: written by an older score-images (no {', '.join(stale)} of this version: tars had "
                f"no identity, shard numbers were positions); move image_aesthetic_tags, image_errors and "
                f"image_tars out of {lake_dir} (or give another --lake) and run again"
            )
        clash = [c for c, t in want.items() if c.lower() in have and have[c.lower()] != t]
        if clash:
            raise ShardsError(
                f"{table.path}: column {clash[0]} is {have[clash[0].lower()]}, but this run's img2dataset listings "
                f"give {want[clash[0]]}; score these tars into another --lake"
            )


def _prepare_tables(lake: LakeSession, tables: _Tables) -> tuple[StructType, ...]:
    """Create each table missing (empty), add this run's columns a table lacks (an empty append that merges the
    schema); the columns each table's commits write: the table's, then this run's it lacks.

    A Parquet lake (classic Spark without the Delta jars) keeps no file for an empty partitioned write: there a
    table without rows is not created, and new columns arrive with the first rows that hold them.
    """
    after = []
    for table, schema in zip(tables.all, tables.schemas, strict=True):
        empty = lake.spark.createDataFrame([], from_arrow_schema(schema))
        if not table_exists(lake, table.path):
            write_table(lake, empty, table.path, partition_by=PARTITION_BY)
        elif any(n.lower() not in {c.lower() for c in read_table(lake, table.path).columns} for n in schema.names):
            write_table(lake, empty, table.path, partition_by=PARTITION_BY, merge_schema=True)
        have = read_table(lake, table.path).schema if table_exists(lake, table.path) else StructType([])
        names = {f.name.lower() for f in have.fields}
        missing = [f for f in from_arrow_schema(schema).fields if f.name.lower() not in names]
        after.append(StructType([*have.fields, *missing]))
    return tuple(after)


def _aligned(frame: DataFrame, schema: StructType) -> DataFrame:
    """``frame`` with the table's columns, in its order and types: a column the frame lacks is null."""
    have = {c.lower(): c for c in frame.columns}
    return frame.select(
        *[
            (F.col(have[f.name.lower()]) if f.name.lower() in have else F.lit(None)).cast(f.dataType).alias(f.name)
            for f in schema.fields
        ]
    )


def _read_staged(path: Path) -> _Staged | None:
    """Counts of a staging file, or ``None`` when there is none (or it is unreadable: the tar is redone)."""
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path, columns=["error", "before_tar"])
    except (OSError, pa.ArrowException, KeyError):
        return None
    failed = [(m, b) for m, b in zip(*(table.column(c).to_pylist() for c in ("error", "before_tar")), strict=True) if m]
    kinds = Counter(error_kind(m) for m, _ in failed)
    return _Staged(table.num_rows - len(failed), len(failed), sum(bool(b) for _, b in failed), kinds)


def _reusable(job: ImageJob, task: TarTask) -> bool:
    """Whether a tar's staged rows (from a run killed before its commits) can be committed as they are."""
    if _read_staged(job.staged(task)) is None:
        return False
    return job.embeddings is None or all(p.is_file() for p in shard_files(job.embeddings, task.embedding or 0))


def _staging_dir(lake_dir: str | Path, spec: ModelSpec, head: Head, collection: str) -> Path:
    digest = hashlib.sha256(f"{spec.name}\0{head.name}\0{collection}".encode()).hexdigest()[:16]
    return Path(table_path(lake_dir)) / SCRATCH_FOLDER / SCORE_JOB / digest


def score_images(lake: LakeSession, stage: ScoreImages) -> ImageScoreSummary:
    """Embed and score the images of the webdataset tars ``stage.shards`` into ``stage.lake`` (see the module
    docstring; :class:`~laion_spark.clip.params.ScoreImages` lists the parameters).

    The head's width must be the model's embedding width; ``collection`` defaults to the folder name of the
    first tar. Returns the run summary (also appended to ``lake/runs``): over the tars scored, ``rows_in =
    rows_embedded + rows_failed``, ``rows_failed = rows_failed_in_tar + rows_failed_before_tar`` (img2dataset's
    failures), ``rows_listed`` (rows of img2dataset's listings), ``img2dataset_urls`` (the counts of its
    ``_stats.json`` files), ``failed_<kind>`` per error kind.

    Raises :class:`~laion_spark.errors.InputError` before writing anything for a bad spec, head, width, glob,
    listing or stats file, a tar whose lake rows disagree with its record, a finished tar changed on disk
    (without ``force``), or a lake written before tars had an identity; :class:`ShardsError` after earlier
    groups' commits for a tar that changes while it is read; :class:`InvariantError` (after recording the run)
    when the tables do not hold exactly each tar's rows.
    """
    spec, head = ModelSpec.parse(stage.model), load_head(stage.head)
    lake_dir, write_embeddings = stage.lake, stage.write_embeddings
    if spec.embed_dim() != head.dim:
        raise InputError(
            f"head {head.name} takes {head.dim}-wide embeddings but model {spec.name} gives {spec.embed_dim()}"
        )
    if not is_local(str(lake_dir)) or (write_embeddings is not None and not is_local(str(write_embeddings))):
        raise InputError(
            "score-images writes staging and embedding files from its tasks: give local (or mounted) folders"
        )
    if stage.force and lake.table_format != "delta":
        raise InputError("--force replaces a tar's rows, which needs Delta tables; this lake is Parquet")
    tars = resolve_tars(stage.shards)
    tasks = describe_tars(tars)
    collection = stage.collection or tars[0].parent.name
    if write_embeddings is not None and Path(write_embeddings).exists() and not Path(write_embeddings).is_dir():
        raise InputError(f"--write-embeddings {write_embeddings}: exists and is not a folder")
    listings = {Path(t.listing): listing_schema(Path(t.listing)) for t in tasks if t.listing is not None}
    extras = extras_of(listings, TAGS_SCHEMA.names)
    scope = {"head": head.name, "collection": collection, "model": spec.name}
    tables = _Tables.of(lake_dir, scope, extras)
    _check_tables(lake, tables, lake_dir)
    job = ImageJob(
        stage=stage,
        spec=spec,
        head=head,
        staging=str(_staging_dir(lake_dir, spec, head, collection)),
        embeddings=str(Path(write_embeddings).resolve()) if write_embeddings is not None else None,
        extras=extras,
    )
    summary = ImageScoreSummary(job=SCORE_JOB, collection=collection, target=IMAGE_TAGS_TABLE, model=spec.name)
    summary.head = head.name

    plan = _plan(lake, tables, tasks, job, stage.force)
    urls = {t.index: stats_count(p) for t in plan.todo if (p := stats_of(Path(t.path))) is not None}
    todo = _claimed(plan.todo, job, scope)  # the first writes: every check is done
    schemas = _prepare_tables(lake, tables)

    progress = RunProgress(SCORE_JOB, len(tasks))
    progress.tars_done = len(plan.skipped)
    kinds: Counter[str] = Counter()
    times: Counter[str] = Counter()
    done: dict[int, _Staged] = {}
    for group in batched(todo, stage.tars_per_commit):
        staged = _stage(lake, job, group, times, summary)
        _commit_group(lake, tables, schemas, plan, group, staged, job, summary.run_id)
        for task in group:
            job.staged(task).unlink()
            done[task.index] = staged[task.index]
            kinds.update(staged[task.index].kinds)
        progress.committed(len(group), sum(staged[t.index].rows for t in group))
    _remove_empty(Path(job.staging))

    listed = [t for t in todo if t.listing is not None]
    before = sum(s.before for s in done.values())
    summary.metrics = {
        "tars_total": len(tasks),
        "tars_skipped": len(plan.skipped),
        "tars_scored": len(done),
        "tars_listed": len(listed),
        "rows_skipped": sum(sum(plan.finished[t.index]) for t in plan.skipped),
        "rows_in": sum(s.rows for s in done.values()),
        "rows_listed": sum(pq.read_metadata(t.listing).num_rows for t in listed),
        "img2dataset_urls": sum(urls.values()),
        "rows_embedded": sum(s.embedded for s in done.values()),
        "rows_failed": sum(s.failed for s in done.values()),
        "rows_failed_in_tar": sum(s.failed for s in done.values()) - before,
        "rows_failed_before_tar": before,
        **{f"failed_{kind}": count for kind, count in sorted(kinds.items())},
        **{f"{step}_ms": times[step] for step in ("read", "decode", "infer", "write")},
    }
    after = count_shards(lake, tables.outputs)
    record_run(lake, lake_dir, summary)
    wrong = unconserved({i: s.split for i, s in done.items()}, after)
    if wrong:
        held, staged = after.of(wrong[0]), done[wrong[0]]
        raise InvariantError(
            f"{len(wrong)} tar(s) are not in the lake exactly once, first shard {wrong[0]}: "
            f"{held[0]} scored + {held[1]} failed rows, expected {staged.embedded} + {staged.failed}",
            summary,
        )
    return summary


def _claimed(tasks: list[TarTask], job: ImageJob, scope: Mapping[str, str]) -> list[TarTask]:
    """``tasks`` with the numbers of their embedding files (:func:`~laion_spark.clip.writer.claim_number`: one per
    tar, model and collection in the folder), when the run writes embeddings."""
    if job.embeddings is None or not tasks:
        return tasks
    known = claims(job.embeddings)
    return [
        dataclasses.replace(
            t,
            embedding=claim_number(
                job.embeddings, {"tar": t.path, "model": scope["model"], "collection": scope["collection"]}, known
            ),
        )
        for t in tasks
    ]


def _stage(
    lake: LakeSession, job: ImageJob, group: list[TarTask], times: Counter[str], summary: ImageScoreSummary
) -> dict[int, _Staged]:
    """Embed and score the group's tars whose staged rows cannot be reused (adding their step times to
    ``times``); the staged counts of every tar of the group. :class:`ShardsError` for a tar a task refused
    (changed while read, listing unreadable), :class:`InvariantError` for a tar left unstaged."""
    compute = [t for t in group if not _reusable(job, t)]
    problems = []
    if compute:
        for row in map_tasks(lake, compute, partial(score_tar_task, job=job), SUMMARY_DDL).collect():
            times.update({k: round(1000 * row[f"{k}_s"]) for k in ("read", "decode", "infer", "write")})
            if row["problem"] is not None:
                problems.append(row["problem"])
    if problems:
        raise ShardsError(f"{len(problems)} tar(s) not scored, first: {sorted(problems)[0]}")
    staged: dict[int, _Staged] = {}
    for task in group:
        counts = _read_staged(job.staged(task))
        if counts is None:
            raise InvariantError(f"{task.path}: its task finished but left no staged rows", summary)
        staged[task.index] = counts
    return staged


def _recorded(lake: LakeSession, tables: _Tables) -> dict[int, tuple[str, int, int]]:
    """The ledger's tars in the run's scope: shard -> (tar, size, mtime_ns) of the version it finished."""
    ledger = tables.ledger.table
    if not table_exists(lake, ledger.path):
        return {}
    frame = (
        read_table(lake, ledger.path)
        .where(F.col("model") == ledger.scope["model"])
        .where((F.col("head") == ledger.scope["head"]) & (F.col("collection") == ledger.scope["collection"]))
    )
    return {int(r[0]): (r[1], int(r[2]), int(r[3])) for r in frame.select(*TAR_KEY).collect()}


def _plan(lake: LakeSession, tables: _Tables, tasks: list[TarTask], job: ImageJob, force: bool) -> ShardPlan[TarTask]:
    """Finished tars are skipped; others are done, unless the lake holds rows of them that match neither
    their record in ``image_tars`` nor their staged rows: then :class:`ShardsError`, before any write. A finished
    tar changed on disk since is refused (:class:`ShardsError`), or with ``force`` done, as every tar is then."""
    recorded = _recorded(lake, tables)
    changed = []
    for task in tasks:
        record = recorded.get(task.index)
        if record is not None and record[0] != task.path:
            raise ShardsError(f"tars {task.path} and {record[0]} have the same shard number; rename one of them")
        if record is not None and record[1:] != (task.size, task.mtime_ns):
            changed.append((task, record))
    if changed and not force:
        task, (_, size, mtime_ns) = changed[0]
        raise ShardsError(
            f"{len(changed)} tar(s) changed on disk since they were scored, first {task.path} ({size:,} bytes "
            f"modified at {mtime_ns} ns then, {task.size:,} bytes at {task.mtime_ns} ns now): give --force to "
            "score them again, replacing their rows; nothing was scored"
        )
    held = count_shards(lake, tables.outputs)
    plan = plan_shards(lake, tasks, held, tables.ledger, force=force)
    staged = {t.index: _read_staged(job.staged(t)) for t in plan.partial}
    plan = plan.settle({i: s.split for i, s in staged.items() if s is not None})
    if plan.refused:
        first = plan.refused[0]
        tagged, failed = held.of(first.index)
        raise ShardsError(
            f"{len(plan.refused)} tar(s) refused, first {first.path} (shard {first.index}): the lake holds "
            f"{tagged} scored and {failed} failed rows of it, which match neither its record in image_tars nor "
            "its staged rows; nothing was scored"
        )
    return plan


def _commit_group(
    lake: LakeSession,
    tables: _Tables,
    schemas: tuple[StructType, ...],
    plan: ShardPlan[TarTask],
    group: list[TarTask],
    staged: dict[int, _Staged],
    job: ImageJob,
    run_id: str,
) -> None:
    """Commit a group's staged rows: the scores and failures the lake lacks (all of them, replacing the tars'
    rows, for forced tars), then the tars' records."""
    tags, errors = tables.outputs
    forced = [t for t in group if plan.verdicts[t.index] is Verdict.FORCE]
    for subset, replace in ((forced, True), ([t for t in group if t not in forced], False)):
        if not subset:
            continue
        lacking_tags = subset if replace else [t for t in plan.lacking(subset, 0) if staged[t.index].embedded]
        lacking_errors = subset if replace else [t for t in plan.lacking(subset, 1) if staged[t.index].failed]
        if lacking_tags:
            rows = _staged_frame(lake, job, lacking_tags, tags.scope).where(F.col("error").isNull())
            rows = rows.withColumn("WIDTH", F.col("original_width")).withColumn("HEIGHT", F.col("original_height"))
            args = tags.replace_args(lacking_tags) if replace else tags.commit_args(lacking_tags)
            write_table(lake, _aligned(rows, schemas[0]), tags.path, **args)
        if lacking_errors:
            rows = _staged_frame(lake, job, lacking_errors, errors.scope).where(F.col("error").isNotNull())
            rows = rows.withColumn("kind", F.split(F.col("error"), ":").getItem(0))
            args = errors.replace_args(lacking_errors) if replace else errors.commit_args(lacking_errors)
            write_table(lake, _aligned(rows, schemas[1]), errors.path, **args)
        records = _aligned(_records(lake, subset, staged, job, tags.scope, run_id), schemas[2])
        tables.ledger.record(lake, records, subset, replace=replace)


def _records(
    lake: LakeSession,
    group: list[TarTask],
    staged: dict[int, _Staged],
    job: ImageJob,
    scope: Mapping[str, str],
    run_id: str,
) -> DataFrame:
    """The ``image_tars`` records of a group's tars (:data:`TARS_SCHEMA`), keyed by :data:`TAR_KEY`."""
    embeddings = [str(shard_files(job.embeddings, t.embedding or 0)[0]) if job.embeddings else None for t in group]
    records = pa.table(
        {
            "shard": [t.index for t in group],
            "tar": [t.path for t in group],
            "size": [t.size for t in group],
            "mtime_ns": [t.mtime_ns for t in group],
            "rows": [staged[t.index].rows for t in group],
            "embedded": [staged[t.index].embedded for t in group],
            "failed": [staged[t.index].failed for t in group],
            "failed_before_tar": [staged[t.index].before for t in group],
            "listing": [t.listing for t in group],
            "model": [scope["model"]] * len(group),
            "run_id": [run_id] * len(group),
            "embeddings": embeddings,
            "head": [scope["head"]] * len(group),
            "collection": [scope["collection"]] * len(group),
        },
        schema=TARS_SCHEMA,
    )
    return lake.spark.createDataFrame(records.to_pandas(), from_arrow_schema(TARS_SCHEMA))


def _staged_frame(lake: LakeSession, job: ImageJob, tasks: list[TarTask], scope: Mapping[str, str]) -> DataFrame:
    """The staged rows of ``tasks`` with their shard number, source and the columns of ``scope`` (model, head,
    collection)."""
    frames = [
        lake.spark.read.parquet(str(job.staged(t))).withColumn("shard", F.lit(t.index).cast("long")) for t in tasks
    ]
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    for column, value in {**scope, "source": SOURCE_IMAGES}.items():
        frame = frame.withColumn(column, F.lit(value))
    return frame


def _remove_empty(folder: Path) -> None:
    """Remove the staging folder and its empty parents up to ``_staging``."""
    for path in (folder, folder.parent, folder.parent.parent):
        try:
            path.rmdir()
        except OSError:
            return


def embed_text(lake: LakeSession, stage: EmbedText) -> RunSummary:
    """Write ``stage.out``: the lake table ``stage.table`` with an ``output`` column, the CLIP text embedding of
    ``column`` (:class:`~laion_spark.clip.params.EmbedText` lists the parameters).

    ``out`` is a table in the session's format (Delta, or Parquet with ``--table-format parquet``),
    replaced when it exists. See :func:`~laion_spark.clip.text.embed_text_frame` for ``mode`` and the
    null captions (counted as ``rows_null_caption``). The run is recorded in the lake that holds
    ``table`` (its parent folder). Raises :class:`InputError` before writing for a missing table or
    column, ``out`` equal to ``table`` or a bad spec; :class:`InvariantError` when ``out`` does not hold
    every input row.
    """
    spec = ModelSpec.parse(stage.model)
    source, target = table_path(stage.table), table_path(stage.out)
    if source == target:
        raise InputError(f"--out {stage.out}: is the input table; choose another path")
    df = read_table(lake, source)
    require_columns(df.schema, {stage.column: "string"}, source)
    frame = embed_text_frame(df, stage.column, spec, mode=stage.mode, batch_size=stage.batch_size, output=stage.output)
    write_table(lake, frame, target, mode="overwrite")
    counts = (
        read_table(lake, target)
        .agg(F.count(F.lit(1)).alias("rows"), F.sum(F.col(stage.output).isNull().cast("long")).alias("nulls"))
        .first()
    )
    rows_in = df.count()
    null_captions = df.where(F.col(stage.column).isNull()).count()
    summary = RunSummary(job=TEXT_JOB, collection="*", target=target)
    summary.metrics = {
        "rows_in": rows_in,
        "rows_embedded": int(counts["rows"]) - int(counts["nulls"] or 0),
        "rows_null_caption": int(counts["nulls"] or 0),
    }
    record_run(lake, _lake_of(source), summary)
    if int(counts["rows"]) != rows_in or int(counts["nulls"] or 0) != null_captions:
        raise InvariantError(
            f"{target}: {counts['rows']} rows with {counts['nulls']} null embeddings, expected {rows_in} rows "
            f"with {null_captions} null captions",
            summary,
        )
    return summary


def _lake_of(table: str) -> str:
    """The lake folder holding a table: its parent folder (or URI prefix)."""
    return str(Path(table).parent) if is_local(table) else table.rstrip("/").rsplit("/", 1)[0]

"""The CLIP jobs: ``score-images`` (tars -> embeddings -> aesthetic scores) and ``embed-text``.

``score_images`` appends to three lake tables under ``lake_dir``, each partitioned by ``head`` then
``collection`` (partition columns come last when read; select by name):

* ``image_aesthetic_tags``: ``hash long, aesthetic float, key string, shard int, model string,
  source string, head string, collection string`` -- one row per embedded image; ``source`` is
  ``images`` and ``model`` the model spec (``ViT-L-14:/ckpt.pt`` ...): these scores came from pixels
  with that model, unlike ``aesthetic_tags``, whose schema stays LAION's;
* ``image_errors``: ``hash long, key string, url string, caption string, error string, kind string,
  shard int, model string, head string, collection string`` -- one row per sample that has no score,
  with the error string and its kind (``truncated_image``, ``missing_caption`` ...);
* ``image_tars``: ``shard int, tar string, rows long, embedded long, failed long, model string,
  run_id string, embeddings string, head string, collection string`` -- one row per finished tar.

``hash`` is LAION's hash of ``url + caption`` (url from ``KEY.json``, caption from ``KEY.txt``).

How it runs (the commit mechanism is :mod:`laion_spark.lake.shard_commits`): tars are scored in groups
of ``tars_per_commit``; a group is one task per tar (:func:`~laion_spark.clip.images.score_tar_task`),
which reads its tar, embeds, scores, and writes the tar's embedding shard and its rows to a staging file
(``lake_dir/_staging/score-images/<digest>/rows_XXXX.parquet``). The driver then commits the group's
rows to ``image_aesthetic_tags`` and ``image_errors`` and, last, its tars to ``image_tars``, then
removes the staging files. The inference runs once; the lake commits read the staged rows.

Resume: ``image_tars`` is the ledger, keyed by :data:`TAR_KEY`: a tar recorded there (same model, head
and collection) is finished and skipped. A tar killed between the commits of its group has its rows
staged still: only the commits it lacks are made (its rows in the lake must be none or all of its staged
rows), so every tar is in each table exactly once.
A tar whose lake rows disagree with its record or its staged rows is refused before anything is
written. Conservation: for every tar ``rows = embedded + failed``, and after the run the tables hold
exactly those counts (:class:`~laion_spark.errors.InvariantError` otherwise).
"""

from __future__ import annotations

import glob
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from ..aesthetic.heads import Head, load_head
from ..engine.factory import LakeSession
from ..errors import InputError, InvariantError
from ..lake.columns import require_columns
from ..lake.layout import is_local, lake_table, table_path
from ..lake.runs import RunSummary, record_run
from ..lake.shard_commits import (
    RecordLedger,
    ShardPlan,
    ShardTable,
    batched,
    count_shards,
    map_tasks,
    plan_shards,
    unconserved,
)
from ..lake.tables import read_table, write_table
from .images import SUMMARY_DDL, ImageJob, TarTask, score_tar_task
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
from .writer import shard_files

SCORE_JOB = "score-images"
TEXT_JOB = "embed-text"
PARTITION_BY = ("head", "collection")
TAGS_COLUMNS = ("hash", "aesthetic", "key", "shard", "model", "source", "head", "collection")
ERRORS_COLUMNS = ("hash", "key", "url", "caption", "error", "kind", "shard", "model", "head", "collection")
TARS_SCHEMA = pa.schema(
    [
        ("shard", pa.int32()),
        ("tar", pa.string()),
        ("rows", pa.int64()),
        ("embedded", pa.int64()),
        ("failed", pa.int64()),
        ("model", pa.string()),
        ("run_id", pa.string()),
        ("embeddings", pa.string()),
        ("head", pa.string()),
        ("collection", pa.string()),
    ]
)
#: The columns of ``image_tars`` that identify a tar (the ledger's key; :func:`_tar_key` gives a task's values).
TAR_KEY = ("shard",)
_GLOB_CHARS = "*?["


class ShardsError(InputError):
    """The tars given to ``score-images`` are missing, not files, or cannot be scored as asked."""


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
    """A tar whose rows are staged: counts of embedded and failed rows and the failures' kinds."""

    embedded: int
    failed: int
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
    """The tar files named by a glob (``DIR/*.tar``, ``**`` allowed) or a list of paths, sorted, unique.

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


def shard_numbers(tars: Sequence[Path]) -> list[int]:
    """Shard number of each tar: its name's number when every tar is named ``NNNNN.tar`` (img2dataset),
    else its position in sorted order. The number names the embedding files and keys resume."""
    stems = [p.name.split(".", 1)[0] for p in tars]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(len(tars)))


def _tar_key(task: TarTask) -> tuple[int]:
    """A tar's key in ``image_tars`` (its columns are :data:`TAR_KEY`): its shard number."""
    return (task.index,)


class _Tables(NamedTuple):
    """The tables of a run: ``image_aesthetic_tags`` and ``image_errors`` (appended: a tar's rows are committed
    only where the lake lacks them) and the ``image_tars`` ledger, each with the run's model, head and collection."""

    tags: ShardTable
    errors: ShardTable
    ledger: RecordLedger[TarTask]

    @classmethod
    def of(cls, lake_dir: str | Path, scope: dict[str, str]) -> _Tables:
        """The tables under ``lake_dir``, with the rows of ``scope``."""
        tags, errors, tars = (
            ShardTable(lake_table(lake_dir, name), scope, PARTITION_BY, replace=False)
            for name in (IMAGE_TAGS_TABLE, IMAGE_ERRORS_TABLE, IMAGE_TARS_TABLE)
        )
        return cls(tags, errors, RecordLedger(tars, TAR_KEY, ("embedded", "failed"), _tar_key))

    @property
    def outputs(self) -> tuple[ShardTable, ShardTable]:
        """The output tables, in commit order (the ledger is committed last)."""
        return self.tags, self.errors


def _read_staged(path: Path) -> _Staged | None:
    """Counts of a staging file, or ``None`` when there is none (or it is unreadable: the tar is redone)."""
    if not path.is_file():
        return None
    try:
        errors = pq.read_table(path, columns=["error"]).column("error")
    except (OSError, pa.ArrowException):
        return None
    failed = errors.drop_null().to_pylist()
    return _Staged(len(errors) - len(failed), len(failed), Counter(error_kind(m) for m in failed))


def _reusable(job: ImageJob, task: TarTask) -> bool:
    """Whether a tar's staged rows (from a run killed before its commits) can be committed as they are."""
    if _read_staged(job.staged(task.index)) is None:
        return False
    return job.embeddings is None or all(p.is_file() for p in shard_files(job.embeddings, task.index))


def _staging_dir(lake_dir: str | Path, spec: ModelSpec, head: Head, collection: str) -> Path:
    digest = hashlib.sha256(f"{spec.name}\0{head.name}\0{collection}".encode()).hexdigest()[:16]
    return Path(table_path(lake_dir)) / "_staging" / SCORE_JOB / digest


def score_images(lake: LakeSession, stage: ScoreImages) -> ImageScoreSummary:
    """Embed and score the images of the webdataset tars ``stage.shards`` into ``stage.lake`` (see the module
    docstring; :class:`~laion_spark.clip.params.ScoreImages` lists the parameters).

    The head's width must be the model's embedding width; ``collection`` defaults to the folder name of the
    first tar. Returns the run summary (also appended to ``lake/runs``): ``rows_in = rows_embedded +
    rows_failed`` over the tars scored, ``failed_<kind>`` per error kind.

    Raises :class:`~laion_spark.errors.InputError` before writing anything for a bad spec, head, width, glob,
    or a tar whose lake rows disagree with its record; :class:`InvariantError` (after recording the run) when
    the tables do not hold exactly each tar's rows.
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
    tars = resolve_tars(stage.shards)
    numbers = shard_numbers(tars)
    collection = stage.collection or tars[0].parent.name
    if write_embeddings is not None and Path(write_embeddings).exists() and not Path(write_embeddings).is_dir():
        raise InputError(f"--write-embeddings {write_embeddings}: exists and is not a folder")
    scope = {"head": head.name, "collection": collection, "model": spec.name}
    tables = _Tables.of(lake_dir, scope)
    job = ImageJob(
        stage=stage,
        spec=spec,
        head=head,
        staging=str(_staging_dir(lake_dir, spec, head, collection)),
        embeddings=str(Path(write_embeddings).resolve()) if write_embeddings is not None else None,
    )
    summary = ImageScoreSummary(job=SCORE_JOB, collection=collection, target=IMAGE_TAGS_TABLE, model=spec.name)
    summary.head = head.name

    tasks = [TarTask(n, str(p)) for n, p in zip(numbers, tars, strict=True)]
    plan = _plan(lake, tables, tasks, job)

    progress = RunProgress(SCORE_JOB, len(tasks))
    progress.tars_done = len(plan.skipped)
    kinds: Counter[str] = Counter()
    times: Counter[str] = Counter()
    done: dict[int, _Staged] = {}
    for group in batched(plan.todo, stage.tars_per_commit):
        staged = _stage(lake, job, group, times, summary)
        _commit_group(lake, tables, plan, group, staged, job, summary.run_id)
        for task in group:
            job.staged(task.index).unlink()
            done[task.index] = staged[task.index]
            kinds.update(staged[task.index].kinds)
        progress.committed(len(group), sum(staged[t.index].rows for t in group))
    _remove_empty(Path(job.staging))

    summary.metrics = {
        "tars_total": len(tasks),
        "tars_skipped": len(plan.skipped),
        "tars_scored": len(done),
        "rows_skipped": sum(sum(plan.finished[t.index]) for t in plan.skipped),
        "rows_in": sum(s.rows for s in done.values()),
        "rows_embedded": sum(s.embedded for s in done.values()),
        "rows_failed": sum(s.failed for s in done.values()),
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


def _stage(
    lake: LakeSession, job: ImageJob, group: list[TarTask], times: Counter[str], summary: ImageScoreSummary
) -> dict[int, _Staged]:
    """Embed and score the group's tars whose staged rows cannot be reused (adding their step times to
    ``times``); the staged counts of every tar of the group. :class:`InvariantError` for a tar left unstaged."""
    compute = [t for t in group if not _reusable(job, t)]
    if compute:
        for row in map_tasks(lake, compute, partial(score_tar_task, job=job), SUMMARY_DDL).collect():
            times.update({k: round(1000 * row[f"{k}_s"]) for k in ("read", "decode", "infer", "write")})
    staged: dict[int, _Staged] = {}
    for task in group:
        counts = _read_staged(job.staged(task.index))
        if counts is None:
            raise InvariantError(f"{task.path}: its task finished but left no staged rows", summary)
        staged[task.index] = counts
    return staged


def _plan(lake: LakeSession, tables: _Tables, tasks: list[TarTask], job: ImageJob) -> ShardPlan[TarTask]:
    """Finished tars are skipped; others are done, unless the lake holds rows of them that match neither
    their record in ``image_tars`` nor their staged rows: then :class:`ShardsError`, before any write."""
    held = count_shards(lake, tables.outputs)
    plan = plan_shards(lake, tasks, held, tables.ledger)
    staged = {t.index: _read_staged(job.staged(t.index)) for t in plan.partial}
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
    plan: ShardPlan[TarTask],
    group: list[TarTask],
    staged: dict[int, _Staged],
    job: ImageJob,
    run_id: str,
) -> None:
    """Commit a group's staged rows: the scores and failures the lake lacks, then the tars' records."""
    tags, errors = tables.outputs
    lacking_tags = [t for t in plan.lacking(group, 0) if staged[t.index].embedded]
    lacking_errors = [t for t in plan.lacking(group, 1) if staged[t.index].failed]
    if lacking_tags:
        rows = _staged_frame(lake, job, lacking_tags, tags.scope).where(F.col("error").isNull())
        write_table(lake, rows.select(*TAGS_COLUMNS), tags.path, **tags.commit_args(lacking_tags))
    if lacking_errors:
        rows = _staged_frame(lake, job, lacking_errors, errors.scope).where(F.col("error").isNotNull())
        rows = rows.withColumn("kind", F.split(F.col("error"), ":").getItem(0))
        write_table(lake, rows.select(*ERRORS_COLUMNS), errors.path, **errors.commit_args(lacking_errors))
    tables.ledger.record(lake, _records(lake, group, staged, job, tags.scope, run_id), group)


def _records(
    lake: LakeSession,
    group: list[TarTask],
    staged: dict[int, _Staged],
    job: ImageJob,
    scope: Mapping[str, str],
    run_id: str,
) -> DataFrame:
    """The ``image_tars`` records of a group's tars (:data:`TARS_SCHEMA`), keyed by :data:`TAR_KEY`."""
    records = pa.table(
        {
            "shard": [t.index for t in group],
            "tar": [t.path for t in group],
            "rows": [staged[t.index].rows for t in group],
            "embedded": [staged[t.index].embedded for t in group],
            "failed": [staged[t.index].failed for t in group],
            "model": [scope["model"]] * len(group),
            "run_id": [run_id] * len(group),
            "embeddings": [job.embeddings] * len(group),
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
        lake.spark.read.parquet(str(job.staged(t.index))).withColumn("shard", F.lit(t.index).cast("int")) for t in tasks
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

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

How it runs: tars are scored in groups of ``tars_per_commit``; a group is ``spark.range`` with one
partition per tar and ``mapInArrow`` (:func:`~laion_spark.clip.images.score_tar_tasks`) reads each tar
inside its task, embeds, scores, and writes the tar's embedding shard and its rows to a staging file
(``lake_dir/_staging/score-images/<digest>/rows_XXXX.parquet``). The driver then commits the group's
rows to ``image_aesthetic_tags`` and ``image_errors`` and, last, its tars to ``image_tars``, then
removes the staging files. The inference runs once; the lake commits read the staged rows.

Resume: a tar in ``image_tars`` (same model, head and collection) is finished and skipped. A tar killed
between the commits of its group has its rows staged still: only the commits it lacks are made (its
rows in the lake must be none or all of its staged rows), so every tar is in each table exactly once.
A tar whose lake rows disagree with its record or its staged rows is refused before anything is
written. Conservation: for every tar ``rows = embedded + failed``, and after the run the tables hold
exactly those counts (:class:`~laion_spark.errors.InvariantError` otherwise).
"""

from __future__ import annotations

import glob
import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from ..aesthetic.heads import Head, load_head
from ..engine.factory import LakeSession
from ..errors import InputError, InvariantError
from ..lake.columns import require_columns
from ..lake.layout import is_local, lake_table, table_path
from ..lake.runs import RunSummary, record_run
from ..lake.tables import read_table, table_exists, write_table
from .images import SUMMARY_DDL, ImageJob, TarTask, score_tar_tasks
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


def _matching(keys: dict[str, str]) -> Column:
    """Rows whose every column of ``keys`` equals its value."""
    condition = F.lit(True)
    for column, value in keys.items():
        condition = condition & (F.col(column) == value)
    return condition


def _counts(lake: LakeSession, table: str, keys: dict[str, str]) -> dict[int, int]:
    """Rows per shard of ``table`` where every column of ``keys`` equals its value (empty without a table)."""
    if not table_exists(lake, table):
        return {}
    rows = read_table(lake, table).where(_matching(keys)).groupBy("shard").count().collect()
    return {int(r["shard"]): int(r["count"]) for r in rows}


def _finished(lake: LakeSession, table: str, keys: dict[str, str]) -> dict[int, tuple[int, int]]:
    """Shard -> (embedded, failed) of the tars ``image_tars`` records as finished."""
    if not table_exists(lake, table):
        return {}
    rows = read_table(lake, table).where(_matching(keys)).select("shard", "embedded", "failed").collect()
    return {int(r["shard"]): (int(r["embedded"]), int(r["failed"])) for r in rows}


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


def _batched(tasks: Sequence[TarTask], size: int) -> Iterator[list[TarTask]]:
    for start in range(0, len(tasks), size):
        yield list(tasks[start : start + size])


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
    shards, lake_dir, write_embeddings, collection = stage.shards, stage.lake, stage.write_embeddings, stage.collection
    batch_size, tars_per_commit, threads, decode_timeout = (
        stage.batch_size,
        stage.tars_per_commit,
        stage.threads,
        stage.decode_timeout,
    )
    if spec.embed_dim() != head.dim:
        raise InputError(
            f"head {head.name} takes {head.dim}-wide embeddings but model {spec.name} gives {spec.embed_dim()}"
        )
    if not is_local(str(lake_dir)) or (write_embeddings is not None and not is_local(str(write_embeddings))):
        raise InputError(
            "score-images writes staging and embedding files from its tasks: give local (or mounted) folders"
        )
    tars = resolve_tars(shards)
    numbers = shard_numbers(tars)
    collection = collection or tars[0].parent.name
    if write_embeddings is not None and Path(write_embeddings).exists() and not Path(write_embeddings).is_dir():
        raise InputError(f"--write-embeddings {write_embeddings}: exists and is not a folder")
    keys = {"head": head.name, "collection": collection, "model": spec.name}
    tables = {name: lake_table(lake_dir, name) for name in (IMAGE_TAGS_TABLE, IMAGE_ERRORS_TABLE, IMAGE_TARS_TABLE)}
    job = ImageJob(
        spec=spec,
        head=head,
        staging=str(_staging_dir(lake_dir, spec, head, collection)),
        embeddings=str(Path(write_embeddings).resolve()) if write_embeddings is not None else None,
        batch_size=batch_size,
        threads=threads,
        timeout=decode_timeout,
    )
    summary = ImageScoreSummary(job=SCORE_JOB, collection=collection, target=IMAGE_TAGS_TABLE, model=spec.name)
    summary.head = head.name

    tasks = [TarTask(n, str(p)) for n, p in zip(numbers, tars, strict=True)]
    plan = _plan(lake, tables, keys, tasks, job)

    progress = RunProgress(SCORE_JOB, len(tasks))
    progress.tars_done = len(plan.skipped)
    kinds: Counter[str] = Counter()
    times: Counter[str] = Counter()
    done: dict[int, _Staged] = {}
    for group in _batched(plan.todo, tars_per_commit):
        compute = [t for t in group if not _reusable(job, t)]
        if compute:
            frame = lake.spark.range(0, len(compute), 1, len(compute))
            for row in frame.mapInArrow(partial(score_tar_tasks, tasks=tuple(compute), job=job), SUMMARY_DDL).collect():
                times.update({k: round(1000 * row[f"{k}_s"]) for k in ("read", "decode", "infer", "write")})
        staged = {t.index: _read_staged(job.staged(t.index)) for t in group}
        missing = [t for t in group if staged[t.index] is None]
        if missing:
            raise InvariantError(f"{missing[0].path}: its task finished but left no staged rows", summary)
        _commit_group(lake, tables, group, staged, plan.tagged, plan.failed, job, keys, summary.run_id)
        for task in group:
            job.staged(task.index).unlink()
            done[task.index] = staged[task.index]
            kinds.update(staged[task.index].kinds)
        progress.committed(len(group), sum(staged[t.index].embedded + staged[t.index].failed for t in group))
    _remove_empty(Path(job.staging))

    summary.metrics = {
        "tars_total": len(tasks),
        "tars_skipped": len(plan.skipped),
        "tars_scored": len(done),
        "rows_skipped": sum(sum(plan.finished[t.index]) for t in plan.skipped),
        "rows_in": sum(s.embedded + s.failed for s in done.values()),
        "rows_embedded": sum(s.embedded for s in done.values()),
        "rows_failed": sum(s.failed for s in done.values()),
        **{f"failed_{kind}": count for kind, count in sorted(kinds.items())},
        **{f"{step}_ms": times[step] for step in ("read", "decode", "infer", "write")},
    }
    tagged_after = _counts(lake, tables[IMAGE_TAGS_TABLE], keys)
    failed_after = _counts(lake, tables[IMAGE_ERRORS_TABLE], keys)
    record_run(lake, lake_dir, summary)
    wrong = [i for i, s in done.items() if (tagged_after.get(i, 0), failed_after.get(i, 0)) != (s.embedded, s.failed)]
    if wrong:
        raise InvariantError(
            f"{len(wrong)} tar(s) are not in the lake exactly once, first shard {wrong[0]}: "
            f"{tagged_after.get(wrong[0], 0)} scored + {failed_after.get(wrong[0], 0)} failed rows, "
            f"expected {done[wrong[0]].embedded} + {done[wrong[0]].failed}",
            summary,
        )
    return summary


@dataclass
class _Plan:
    """What a run does with each tar, from the lake's rows before it starts."""

    todo: list[TarTask]
    skipped: list[TarTask]
    finished: dict[int, tuple[int, int]]
    tagged: dict[int, int]
    failed: dict[int, int]


def _plan(
    lake: LakeSession, tables: dict[str, str], keys: dict[str, str], tasks: list[TarTask], job: ImageJob
) -> _Plan:
    """Finished tars are skipped; others are done, unless the lake holds rows of them that match neither
    their record in ``image_tars`` nor their staged rows: then :class:`ShardsError`, before any write."""
    finished = _finished(lake, tables[IMAGE_TARS_TABLE], keys)
    tagged = _counts(lake, tables[IMAGE_TAGS_TABLE], keys)
    failed = _counts(lake, tables[IMAGE_ERRORS_TABLE], keys)
    todo, skipped, refused = [], [], []
    for task in tasks:
        have = (tagged.get(task.index, 0), failed.get(task.index, 0))
        if task.index in finished:
            (skipped if have == finished[task.index] else refused).append(task)
            continue
        staged = _read_staged(job.staged(task.index))
        partial_ok = have == (0, 0) or (
            staged is not None and have[0] in (0, staged.embedded) and have[1] in (0, staged.failed)
        )
        (todo if partial_ok else refused).append(task)
    if refused:
        first = refused[0]
        raise ShardsError(
            f"{len(refused)} tar(s) refused, first {first.path} (shard {first.index}): the lake holds "
            f"{tagged.get(first.index, 0)} scored and {failed.get(first.index, 0)} failed rows of it, which match "
            "neither its record in image_tars nor its staged rows; nothing was scored"
        )
    return _Plan(todo, skipped, finished, tagged, failed)


def _commit_group(
    lake: LakeSession,
    tables: dict[str, str],
    group: list[TarTask],
    staged: dict[int, _Staged | None],
    tagged: dict[int, int],
    failed: dict[int, int],
    job: ImageJob,
    keys: dict[str, str],
    run_id: str,
) -> None:
    """Commit a group's staged rows: the scores and failures the lake lacks, then the tars' records."""
    lacking_tags = [t for t in group if tagged.get(t.index, 0) == 0 and staged[t.index].embedded]
    lacking_errors = [t for t in group if failed.get(t.index, 0) == 0 and staged[t.index].failed]
    if lacking_tags:
        rows = _staged_frame(lake, job, lacking_tags, keys).where(F.col("error").isNull())
        write_table(lake, rows.select(*TAGS_COLUMNS), tables[IMAGE_TAGS_TABLE], partition_by=PARTITION_BY)
    if lacking_errors:
        rows = _staged_frame(lake, job, lacking_errors, keys).where(F.col("error").isNotNull())
        rows = rows.withColumn("kind", F.split(F.col("error"), ":").getItem(0))
        write_table(lake, rows.select(*ERRORS_COLUMNS), tables[IMAGE_ERRORS_TABLE], partition_by=PARTITION_BY)
    records = pa.table(
        {
            "shard": [t.index for t in group],
            "tar": [t.path for t in group],
            "rows": [staged[t.index].embedded + staged[t.index].failed for t in group],
            "embedded": [staged[t.index].embedded for t in group],
            "failed": [staged[t.index].failed for t in group],
            "model": [keys["model"]] * len(group),
            "run_id": [run_id] * len(group),
            "embeddings": [job.embeddings] * len(group),
            "head": [keys["head"]] * len(group),
            "collection": [keys["collection"]] * len(group),
        },
        schema=TARS_SCHEMA,
    )
    write_table(
        lake,
        lake.spark.createDataFrame(records.to_pandas(), from_arrow_schema(TARS_SCHEMA)),
        tables[IMAGE_TARS_TABLE],
        partition_by=PARTITION_BY,
    )


def _staged_frame(lake: LakeSession, job: ImageJob, tasks: list[TarTask], keys: dict[str, str]) -> DataFrame:
    """The staged rows of ``tasks`` with their shard number, model, source, head and collection."""
    frames = [
        lake.spark.read.parquet(str(job.staged(t.index))).withColumn("shard", F.lit(t.index).cast("int")) for t in tasks
    ]
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    for column, value in {**keys, "source": SOURCE_IMAGES}.items():
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

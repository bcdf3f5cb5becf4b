"""One engine for jobs that commit sharded work to lake tables (``score-embeddings``, ``score-images``).

A *shard* is one unit of a job's input (an embedding shard, a webdataset tar); its number, ``index``, is in
the ``shard`` column of every row it gives. A job commits each shard's rows to its output tables
(:class:`ShardTable`, in commit order), inside its *scope*: the columns and values of the rows it owns there
(``head`` and ``collection``; ``model`` too for images). The mechanism, end to end:

1. Tasks: :func:`map_tasks` runs a function over shards in executors, one partition per shard
   (``spark.range`` ids, each looked up in the task list inside its task: no data passes the driver).
2. Counts: :func:`count_shards`, rows per shard of the scope in each output table, one aggregate per table.
3. Ledger (:class:`Ledger`): which shards are finished, with the rows each committed to every table.
   :class:`CountLedger` reads it off the counts (rows that add up to the shard's); :class:`RecordLedger` reads
   a table with one record per finished shard, found by the shard's *key* (its identity in the ledger).
4. Plan: :func:`plan_shards`, from the counts and a ledger, skips the finished shards whose tables hold what
   the ledger says, takes up the shards with no row anywhere and leaves the others *partial*;
   :meth:`ShardPlan.settle` resumes a partial shard when each table holds none or all of what the shard
   gives it (committing then only the tables it lacks, :meth:`ShardPlan.lacking`) and refuses the others:
   the lake disagrees with the input, and the job says so before it writes anything.
5. Commits: :func:`batched` cuts the shards into commit groups; :meth:`ShardTable.commit_args` says how a
   group is committed with :func:`~laion_spark.lake.tables.write_table`: replacing exactly the group's shards
   of the scope (``replaceWhere shard IN (...)``, after the table's creation empty: a rerun or a concurrent
   run of the same shards leaves one copy), or appending. A forced run (``plan_shards(..., force=True)``)
   processes every shard again and commits it with :meth:`ShardTable.replace_args`, replacing exactly its
   rows in every table (its ledger record too) whatever the commit mode.
6. Conservation: :func:`unconserved` names the shards whose tables do not hold exactly their rows once.

A job keeps what is its own: reading its inputs, its model, its schemas, the rows each table gets.
DataFrame API only (Spark Connect); nothing is cached (``persist`` is a no-op on Sail), so a job counts
what it committed by reading the tables again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .tables import read_table, table_exists, write_table

if TYPE_CHECKING:
    from ..engine.session import LakeSession

#: The column holding a row's shard number, in every output table and ledger.
SHARD_COLUMN = "shard"


class Task(Protocol):
    """What the engine needs of a job's task: ``index``, the number of its shard."""

    @property
    def index(self) -> int: ...


T = TypeVar("T", bound=Task)
T_contra = TypeVar("T_contra", bound=Task, contravariant=True)


def map_tasks(
    lake: LakeSession, tasks: Sequence[T], run: Callable[[T], Iterator[pa.RecordBatch]], schema: str
) -> DataFrame:
    """The batches ``run(task)`` yields for every task, computed in executors, one partition per task.

    ``tasks`` and ``run`` are pickled into the plan: give descriptions (paths, numbers), never data, and a
    module-level function (or a :func:`functools.partial` of one). ``schema`` is the batches' DDL string.
    Raises ``ValueError`` for an empty ``tasks`` (a frame needs a partition).
    """
    if not tasks:
        raise ValueError("map_tasks needs at least one task")
    ids = lake.spark.range(0, len(tasks), 1, len(tasks))
    return ids.mapInArrow(partial(_run_tasks, tasks=tuple(tasks), run=run), schema)


def _run_tasks(
    batches: Iterator[pa.RecordBatch], *, tasks: Sequence[T], run: Callable[[T], Iterator[pa.RecordBatch]]
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: ``run`` of the task of each id that reaches this partition."""
    for ids in batches:
        for task_id in ids.column(0).to_pylist():
            yield from run(tasks[task_id])


def batched(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive groups of ``size`` (the last one may be smaller): one commit each.

    Raises ``ValueError`` for a ``size`` below 1.
    """
    if size < 1:
        raise ValueError(f"a commit group holds at least one shard, got {size}")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _in_scope(scope: Mapping[str, str]) -> Column:
    """The condition of the rows whose every column of ``scope`` equals its value (all rows for an empty one)."""
    condition = F.lit(True)
    for column, value in scope.items():
        condition = condition & (F.col(column) == value)
    return condition


def _sql_literal(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _shards_predicate(shards: Iterable[Task]) -> str:
    """SQL predicate of these shards' rows; ``false`` for none (``IN ()`` is not SQL)."""
    numbers = ", ".join(str(int(s.index)) for s in shards)
    return f"{SHARD_COLUMN} IN ({numbers})" if numbers else "false"


@dataclass(frozen=True)
class ShardTable:
    """An output table of a sharded job, the rows it owns there, and how a group of shards is committed.

    ``path`` is the table, ``scope`` the columns and values of the job's rows in it, ``partition_by`` the
    table's partition columns. ``replace`` is the commit mode: ``True`` replaces exactly the committed shards'
    rows of the scope (every scope column must then be a partition column), ``False`` appends, for jobs whose
    plan commits only the shards a table lacks. Raises ``ValueError`` for a replacing table whose scope names a
    column that is not a partition column.
    """

    path: str
    scope: Mapping[str, str]
    partition_by: tuple[str, ...]
    replace: bool = True

    def __post_init__(self) -> None:
        outside = [c for c in self.scope if c not in self.partition_by]
        if self.replace and outside:
            raise ValueError(f"{self.path}: a replacing table's scope must be partition columns, not {outside}")

    def counts(self, lake: LakeSession) -> dict[int, int]:
        """Rows per shard of the scope in this table, from one aggregate (empty when the table does not exist)."""
        if not table_exists(lake, self.path):
            return {}
        rows = read_table(lake, self.path).where(_in_scope(self.scope)).groupBy(SHARD_COLUMN).count().collect()
        return {int(r[SHARD_COLUMN]): int(r["count"]) for r in rows}

    def commit_args(self, shards: Iterable[Task], *, whole: bool = False) -> dict[str, Any]:
        """Keyword arguments of :func:`~laion_spark.lake.tables.write_table` that commit ``shards``' rows here.

        Replacing: the rows of these shards in the scope are replaced, or with ``whole`` every row of the scope
        (``--overwrite``); ``write_table`` creates the table empty first, so even a first commit replaces.
        Appending: the rows are added (``shards`` and ``whole`` change nothing).
        """
        if not self.replace:
            return {"partition_by": self.partition_by}
        return {
            "partition_by": self.partition_by,
            "replace_partition": dict(self.scope),
            "replace_rows": None if whole else _shards_predicate(shards),
        }

    def replace_args(self, shards: Iterable[Task]) -> dict[str, Any]:
        """Keyword arguments of :func:`~laion_spark.lake.tables.write_table` that replace exactly ``shards``' rows of
        the scope with the committed ones, in either commit mode (a forced shard): the scope's partition columns
        select the partition, its other columns join ``shard IN (...)`` in the row predicate (Delta only: on
        Parquet ``write_table`` would append)."""
        outside = [f"`{c}` = {_sql_literal(v)}" for c, v in self.scope.items() if c not in self.partition_by]
        return {
            "partition_by": self.partition_by,
            "replace_partition": {c: v for c, v in self.scope.items() if c in self.partition_by},
            "replace_rows": " AND ".join([*outside, f"({_shards_predicate(shards)})"]),
        }


@dataclass(frozen=True)
class ShardCounts:
    """Rows per shard in each output table of a job, in the order of its tables."""

    tables: tuple[Mapping[int, int], ...]

    def of(self, index: int) -> tuple[int, ...]:
        """Rows of shard ``index`` in each table (0 where it has none)."""
        return tuple(table.get(index, 0) for table in self.tables)


def count_shards(lake: LakeSession, tables: Sequence[ShardTable]) -> ShardCounts:
    """Rows per shard of each table's scope: one aggregate per table, whatever the number of shards."""
    return ShardCounts(tuple(table.counts(lake) for table in tables))


class Ledger(Protocol[T_contra]):
    """Where a job reads which shards are finished."""

    def finished(self, lake: LakeSession, tasks: Sequence[T_contra], held: ShardCounts) -> dict[int, tuple[int, ...]]:
        """Shard index -> rows it committed to each output table, for the finished shards among ``tasks``;
        ``held`` is what the output tables hold (:func:`count_shards`)."""
        ...


@dataclass(frozen=True)
class CountLedger:
    """The output tables are the ledger: a shard is finished when the lake holds rows of it adding up to its rows.

    ``rows`` maps every shard to its row count, known before the shard is processed. A shard without rows
    leaves nothing to count: it is processed again (at no cost) by every run.
    """

    rows: Mapping[int, int]

    def finished(self, lake: LakeSession, tasks: Sequence[Task], held: ShardCounts) -> dict[int, tuple[int, ...]]:
        """The shards whose rows in the output tables add up to ``rows``, with those rows (``lake`` is unused)."""
        counts = {t.index: held.of(t.index) for t in tasks}
        return {i: have for i, have in counts.items() if any(have) and sum(have) == self.rows[i]}


@dataclass(frozen=True)
class RecordLedger(Generic[T]):
    """A ledger table: one record per finished shard, committed after the shard's rows (last in its group).

    A record holds the shard's key, the ledger's identity of a shard (``key_columns``, whose values
    ``key(task)`` gives, in that order), and the rows the shard committed to each output table
    (``count_columns``, in the order of the tables). Changing what identifies a shard (a number, a path, a
    path with its size and time) changes ``key_columns`` and ``key`` and nothing else. ``table`` is where the
    records are, with the job's scope.
    """

    table: ShardTable
    key_columns: tuple[str, ...]
    count_columns: tuple[str, ...]
    key: Callable[[T], tuple[object, ...]] = field(compare=False)

    def finished(self, lake: LakeSession, tasks: Sequence[T], held: ShardCounts) -> dict[int, tuple[int, ...]]:
        """The tasks whose key has a record in the scope, with the rows it says (``held`` is unused)."""
        if not table_exists(lake, self.table.path):
            return {}
        frame = read_table(lake, self.table.path).where(_in_scope(self.table.scope))
        width = len(self.key_columns)
        records = {
            tuple(row[:width]): tuple(int(v) for v in row[width:])
            for row in frame.select(*self.key_columns, *self.count_columns).collect()
        }
        return {t.index: records[self.key(t)] for t in tasks if self.key(t) in records}

    def record(self, lake: LakeSession, records: DataFrame, shards: Iterable[T], *, replace: bool = False) -> None:
        """Commit the records of the finished ``shards`` (``records`` has the ledger table's columns); ``replace``
        replaces the shards' records in the scope (:meth:`ShardTable.replace_args`: forced shards)."""
        args = self.table.replace_args(shards) if replace else self.table.commit_args(shards)
        write_table(lake, records, self.table.path, **args)


class Verdict(Enum):
    """What a run does with a shard."""

    FRESH = "fresh"  # no row of it in the lake: process it
    RESUME = "resume"  # partly committed, each table none or all of its rows: commit the tables it lacks
    PARTIAL = "partial"  # unfinished, with rows in the lake: ShardPlan.settle decides
    SKIP = "skip"  # finished, its tables hold what the ledger says
    REFUSE = "refuse"  # the lake disagrees with the ledger or with what the shard gives
    FORCE = "force"  # processed again whatever the lake holds, its rows replaced (ShardTable.replace_args)


@dataclass(frozen=True)
class ShardPlan(Generic[T]):
    """What a run does with each shard, from the lake before it starts (:func:`plan_shards`).

    ``held`` is what the output tables held then; ``finished`` the ledger's records of the finished shards.
    Every list is in the order of ``tasks``.
    """

    tasks: tuple[T, ...]
    verdicts: Mapping[int, Verdict]
    held: ShardCounts
    finished: Mapping[int, tuple[int, ...]]

    def having(self, *verdicts: Verdict) -> list[T]:
        """The tasks with one of these verdicts."""
        return [t for t in self.tasks if self.verdicts[t.index] in verdicts]

    @property
    def todo(self) -> list[T]:
        """The shards this run commits: fresh, resumed and forced ones."""
        return self.having(Verdict.FRESH, Verdict.RESUME, Verdict.FORCE)

    @property
    def skipped(self) -> list[T]:
        """The finished shards."""
        return self.having(Verdict.SKIP)

    @property
    def partial(self) -> list[T]:
        """The unfinished shards the lake holds rows of, until :meth:`settle`."""
        return self.having(Verdict.PARTIAL)

    @property
    def refused(self) -> list[T]:
        """The shards whose rows in the lake disagree with the ledger or with what they give."""
        return self.having(Verdict.REFUSE)

    def lacking(self, tasks: Iterable[T], table: int) -> list[T]:
        """Those of ``tasks`` of which output table number ``table`` held no row: the ones it is committed for."""
        return [t for t in tasks if self.held.of(t.index)[table] == 0]

    def settle(self, expected: Mapping[int, Sequence[int]]) -> ShardPlan[T]:
        """The plan with every partial shard resumed or refused.

        ``expected`` maps a partial shard to the rows it gives each output table (the job knows it from its
        staged rows, or computes it). The shard is resumed when each table holds none or all of them; refused
        when one holds another number, or when ``expected`` does not say.
        """
        verdicts = dict(self.verdicts)
        for task in self.partial:
            rows = expected.get(task.index)
            none_or_all = rows is not None and all(
                have in (0, want) for have, want in zip(self.held.of(task.index), rows, strict=True)
            )
            verdicts[task.index] = Verdict.RESUME if none_or_all else Verdict.REFUSE
        return dataclasses.replace(self, verdicts=verdicts)


def plan_shards(
    lake: LakeSession, tasks: Sequence[T], held: ShardCounts, ledger: Ledger[T], *, force: bool = False
) -> ShardPlan[T]:
    """Classify every shard from the rows the output tables hold of it (``held``) and the ``ledger``.

    A finished shard is skipped when its tables hold what its record says, refused otherwise; an unfinished
    one with no row in any table is fresh; the others are partial (see :meth:`ShardPlan.settle`). With
    ``force`` every shard is forced (the ledger is not read). Raises ``ValueError`` when two tasks have the
    same shard number.
    """
    numbers = [t.index for t in tasks]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"shard numbers must be unique, got {numbers}")
    if force:
        return ShardPlan(tuple(tasks), {t.index: Verdict.FORCE for t in tasks}, held, {})
    finished = ledger.finished(lake, tasks, held)
    verdicts = {}
    for task in tasks:
        have, record = held.of(task.index), finished.get(task.index)
        if record is not None:
            verdicts[task.index] = Verdict.SKIP if have == record else Verdict.REFUSE
        else:
            verdicts[task.index] = Verdict.PARTIAL if any(have) else Verdict.FRESH
    return ShardPlan(tuple(tasks), verdicts, held, finished)


def unconserved(expected: Mapping[int, Sequence[int]], held: ShardCounts) -> list[int]:
    """The shards of ``expected`` (in its order) whose rows in the output tables are not exactly ``expected[i]``.

    ``expected[i]`` is what shard ``i`` gives each table, so that its rows in = the sum; a shard short of rows
    (lost) or over them (committed twice) is listed. ``held`` is usually :func:`count_shards` after the run.
    """
    return [i for i, rows in expected.items() if held.of(i) != tuple(rows)]

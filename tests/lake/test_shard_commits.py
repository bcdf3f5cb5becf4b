"""The sharded-commit engine: batching, planning from counts and ledgers, conservation, tasks and group commits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import deltalake
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from laion_spark.engine.session import LakeSession
from laion_spark.lake.shard_commits import (
    CountLedger,
    RecordLedger,
    ShardCounts,
    ShardTable,
    Verdict,
    batched,
    count_shards,
    map_tasks,
    plan_shards,
    unconserved,
)
from laion_spark.lake.tables import write_table

PARTITION_BY = ("head", "collection")
SCOPE = {"head": "h", "collection": "c"}


@dataclass(frozen=True)
class Task:
    index: int
    path: str = ""


@dataclass(frozen=True)
class Records:
    """A ledger given as its records: shard -> rows per table (any object with ``finished`` plugs in)."""

    records: dict[int, tuple[int, ...]]

    def finished(self, lake, tasks, held) -> dict[int, tuple[int, ...]]:
        return {t.index: self.records[t.index] for t in tasks if t.index in self.records}


def tasks(*numbers: int) -> list[Task]:
    return [Task(n, f"/tars/{n:05d}.tar") for n in numbers]


def verdicts(plan) -> dict[int, Verdict]:
    return {t.index: plan.verdicts[t.index] for t in plan.tasks}


def test_batched_cuts_consecutive_groups_the_last_smaller() -> None:
    assert list(batched(tasks(0, 1, 2, 3, 4), 2)) == [tasks(0, 1), tasks(2, 3), tasks(4)]
    assert list(batched([], 3)) == []
    with pytest.raises(ValueError, match="at least one shard"):
        list(batched(tasks(0), 0))


def test_count_ledger_skips_complete_shards_and_leaves_the_rest_to_settle() -> None:
    """Rows per shard: 0 -> 10, 1 -> 10, 2 -> 10, 3 -> 10, 4 -> 0 (an empty shard)."""
    held = ShardCounts(({0: 8, 1: 7, 3: 6}, {0: 2, 3: 1}))
    work = tasks(0, 1, 2, 3, 4)
    ledger = CountLedger({0: 10, 1: 10, 2: 10, 3: 10, 4: 0})
    plan = plan_shards(None, work, held, ledger)

    assert ledger.finished(None, work, held) == plan.finished == {0: (8, 2)}
    assert verdicts(plan) == {
        0: Verdict.SKIP,
        1: Verdict.PARTIAL,
        2: Verdict.FRESH,
        3: Verdict.PARTIAL,
        4: Verdict.FRESH,
    }
    # shard 1 gives 7 scored + 3 rejected: its table of scores is whole, the other empty -> resumed;
    # shard 3 gives 8 + 2: its tables hold 6 and 1 -> refused
    settled = plan.settle({1: (7, 3), 3: (8, 2)})
    assert [t.index for t in settled.todo] == [1, 2, 4]
    assert [t.index for t in settled.skipped] == [0]
    assert [t.index for t in settled.refused] == [3]
    assert [t.index for t in settled.lacking(settled.todo, 0)] == [2, 4]
    assert [t.index for t in settled.lacking(settled.todo, 1)] == [1, 2, 4]


def test_a_partial_shard_is_resumed_whatever_table_it_lacks_and_refused_without_expected_rows() -> None:
    held = ShardCounts(({2: 5}, {1: 3, 2: 0}))
    plan = plan_shards(None, tasks(1, 2, 3), held, Records({}))
    settled = plan.settle({1: (5, 3)})  # shard 2: nothing known of what it gives

    assert verdicts(settled) == {1: Verdict.RESUME, 2: Verdict.REFUSE, 3: Verdict.FRESH}
    assert [t.index for t in settled.lacking(settled.todo, 0)] == [1, 3]


def test_a_ledger_record_skips_a_shard_whose_tables_match_it_and_refuses_one_whose_do_not() -> None:
    held = ShardCounts(({0: 30, 1: 30, 2: 4}, {0: 2, 1: 1}))
    plan = plan_shards(None, tasks(0, 1, 2), held, Records({0: (30, 2), 1: (30, 2)}))

    assert verdicts(plan) == {0: Verdict.SKIP, 1: Verdict.REFUSE, 2: Verdict.PARTIAL}
    assert plan.finished == {0: (30, 2), 1: (30, 2)}


def test_plan_keeps_the_order_of_the_tasks_and_refuses_duplicate_numbers() -> None:
    held = ShardCounts(({5: 1}, {}))
    plan = plan_shards(None, tasks(9, 5, 2), held, Records({})).settle({5: (1, 0)})
    assert [t.index for t in plan.todo] == [9, 5, 2]
    with pytest.raises(ValueError, match="unique"):
        plan_shards(None, tasks(1, 1), held, Records({}))


def test_conservation_names_shards_doubled_or_short() -> None:
    expected = {0: (10, 2), 1: (10, 2), 2: (10, 2), 3: (0, 0)}
    held = ShardCounts(({0: 10, 1: 20, 2: 9}, {0: 2, 1: 4, 2: 2}))
    assert unconserved(expected, held) == [1, 2]
    assert unconserved({0: (10, 2)}, held) == []
    assert unconserved({4: (0, 1)}, held) == [4]


def test_a_replacing_table_refuses_a_scope_outside_its_partitions() -> None:
    with pytest.raises(ValueError, match="partition columns"):
        ShardTable("/lake/t", {**SCOPE, "model": "m"}, PARTITION_BY)
    appended = ShardTable("/lake/t", {**SCOPE, "model": "m"}, PARTITION_BY, replace=False)
    assert appended.commit_args(tasks(1, 2), whole=True) == {"partition_by": PARTITION_BY}


def _rows(index: int, *, count: int, value: float, collection: str = "c") -> dict[str, list]:
    return {
        "value": [value] * count,
        "shard": [index] * count,
        "head": ["h"] * count,
        "collection": [collection] * count,
    }


def _frame(lake: LakeSession, *parts: dict[str, list]):
    columns = {k: [v for part in parts for v in part[k]] for k in ("value", "shard", "head", "collection")}
    schema = pa.schema(
        [("value", pa.float64()), ("shard", pa.int32()), ("head", pa.string()), ("collection", pa.string())]
    )
    return lake.spark.createDataFrame(pa.table(columns, schema=schema).to_pandas())


def _commit(
    lake: LakeSession, table: ShardTable, shards: list[int], *parts: dict[str, list], whole: bool = False
) -> None:
    write_table(lake, _frame(lake, *parts), table.path, **table.commit_args(tasks(*shards), whole=whole))


def test_group_commits_replace_exactly_the_group_shards_of_the_scope(sail: LakeSession, tmp_path: Path) -> None:
    table = ShardTable(str(tmp_path / "t"), SCOPE, PARTITION_BY)
    other = ShardTable(table.path, {"head": "h", "collection": "other"}, PARTITION_BY)
    _commit(sail, table, [0, 1], _rows(0, count=3, value=1.0), _rows(1, count=2, value=1.0))
    _commit(sail, other, [1], _rows(1, count=4, value=1.0, collection="other"))
    _commit(sail, table, [1, 2], _rows(1, count=2, value=2.0), _rows(2, count=5, value=2.0))
    _commit(sail, table, [1, 2], _rows(1, count=2, value=2.0), _rows(2, count=5, value=2.0))  # a rerun

    assert count_shards(sail, [table, other]) == ShardCounts(({0: 3, 1: 2, 2: 5}, {1: 4}))
    values = deltalake.DeltaTable(table.path).to_pandas().groupby(["collection", "shard"])["value"].max().to_dict()
    assert values == {("c", 0): 1.0, ("c", 1): 2.0, ("c", 2): 2.0, ("other", 1): 1.0}

    _commit(sail, table, [], _rows(7, count=1, value=3.0), whole=True)  # --overwrite: the scope, not the table
    assert count_shards(sail, [table, other]) == ShardCounts(({7: 1}, {1: 4}))


def test_appending_tables_add_rows_and_missing_tables_count_nothing(sail: LakeSession, tmp_path: Path) -> None:
    table = ShardTable(str(tmp_path / "t"), SCOPE, PARTITION_BY, replace=False)
    assert table.counts(sail) == {}
    _commit(sail, table, [0], _rows(0, count=2, value=1.0))
    _commit(sail, table, [0], _rows(0, count=2, value=1.0))  # committed twice: conservation names it
    assert table.counts(sail) == {0: 4}
    assert unconserved({0: (2,)}, count_shards(sail, [table])) == [0]


def test_a_record_ledger_finds_finished_shards_by_their_key(sail: LakeSession, tmp_path: Path) -> None:
    """The key is the ledger's identity of a shard: keyed by path, a tar renumbered is still found."""
    ledger_table = ShardTable(str(tmp_path / "ledger"), SCOPE, PARTITION_BY, replace=False)
    records = pa.table(
        {
            "shard": pa.array([0, 1], pa.int32()),
            "tar": ["/tars/00000.tar", "/tars/00001.tar"],
            "embedded": [30, 31],
            "failed": [2, 1],
            "head": ["h", "h"],
            "collection": ["c", "c"],
        }
    )
    by_number = RecordLedger(ledger_table, ("shard",), ("embedded", "failed"), lambda t: (t.index,))
    assert by_number.finished(sail, tasks(0, 1), ShardCounts(())) == {}  # no ledger table yet
    by_number.record(sail, sail.spark.createDataFrame(records.to_pandas()), tasks(0, 1))

    assert by_number.finished(sail, tasks(0, 1, 2), ShardCounts(())) == {0: (30, 2), 1: (31, 1)}
    by_path = RecordLedger(ledger_table, ("tar",), ("embedded", "failed"), lambda t: (t.path,))
    renumbered = [Task(5, "/tars/00001.tar"), Task(6, "/tars/00009.tar")]
    assert by_path.finished(sail, renumbered, ShardCounts(())) == {5: (31, 1)}


def test_a_forced_plan_does_every_shard_whatever_the_ledger_says() -> None:
    held = ShardCounts(({0: 8, 1: 3}, {0: 2}))
    plan = plan_shards(None, tasks(0, 1, 2), held, Records({0: (8, 2), 1: (9, 1)}), force=True)
    assert verdicts(plan) == dict.fromkeys((0, 1, 2), Verdict.FORCE)
    assert plan.todo == tasks(0, 1, 2) and plan.skipped == [] and plan.finished == {}


def test_replace_args_replace_exactly_the_shards_of_a_scope_wider_than_the_partitions(
    sail: LakeSession, tmp_path: Path
) -> None:
    """An appending table whose scope has a data column (``model``): forced shards replace their rows of that
    scope only, the ledger's record too; other models' and other shards' rows stay."""
    table = ShardTable(str(tmp_path / "t"), {**SCOPE, "model": "m'1"}, PARTITION_BY, replace=False)
    other = ShardTable(table.path, {**SCOPE, "model": "m2"}, PARTITION_BY, replace=False)
    assert table.replace_args(tasks(1, 2)) == {
        "partition_by": PARTITION_BY,
        "replace_partition": SCOPE,
        "replace_rows": "`model` = 'm\\'1' AND (shard IN (1, 2))",
    }

    def frame(model: str, *parts: dict[str, list]):
        return _frame(sail, *parts).withColumn("model", F.lit(model))

    for scoped in (table, other):
        model = scoped.scope["model"]
        write_table(sail, frame(model, _rows(1, count=2, value=1.0), _rows(2, count=3, value=1.0)), table.path,
                    **scoped.commit_args(tasks(1, 2)))  # fmt: skip
    write_table(sail, frame("m'1", _rows(2, count=4, value=5.0)), table.path, **table.replace_args(tasks(2)))
    assert count_shards(sail, [table, other]) == ShardCounts(({1: 2, 2: 4}, {1: 2, 2: 3}))
    ledger = RecordLedger(table, ("shard",), ("value",), lambda t: (t.index,))
    ledger.record(sail, frame("m'1", _rows(1, count=1, value=9.0)), tasks(1), replace=True)
    assert count_shards(sail, [table, other]) == ShardCounts(({2: 4, 1: 1}, {1: 2, 2: 3}))


def _square(task: Task, *, offset: int) -> Iterator[pa.RecordBatch]:
    yield pa.RecordBatch.from_pydict({"shard": [task.index], "value": [task.index**2 + offset]})


def test_map_tasks_runs_each_task_once_in_its_own_partition(sail: LakeSession) -> None:
    frame = map_tasks(sail, tasks(3, 1, 4), partial(_square, offset=1), "shard long, value long")
    rows = frame.select("shard", "value", F.spark_partition_id().alias("partition")).collect()
    assert sorted((r["shard"], r["value"]) for r in rows) == [(1, 2), (3, 10), (4, 17)]
    assert len({r["partition"] for r in rows}) == 3
    with pytest.raises(ValueError, match="at least one task"):
        map_tasks(sail, [], partial(_square, offset=1), "shard long, value long")

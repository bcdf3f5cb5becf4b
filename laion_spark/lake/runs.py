"""Run summaries: printed, and kept in the lake's small ``runs`` table.

One row per metric (long format) so every job can add its own counts and the
table stays queryable with plain SQL:
``SELECT metric, value FROM delta.`lake/runs` WHERE job = 'join-tags'``.
``job`` is the command's name (``join-tags``, ``subsets`` ...), ``collection``
the collection it ran over (``*`` for all) and ``target`` what it wrote (a
table such as ``subset_laion_art``, or a file).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from .layout import RUNS_TABLE, lake_table
from .tables import write_table

if TYPE_CHECKING:
    from ..engine.session import LakeSession

RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("job", pa.string()),
        ("collection", pa.string()),
        ("target", pa.string()),
        ("engine", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("metric", pa.string()),
        ("value", pa.int64()),
    ]
)


@dataclass
class RunSummary:
    """Counts of one job run over one collection (or ``"*"``)."""

    job: str
    collection: str
    metrics: dict[str, int] = field(default_factory=dict)
    target: str = ""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def format(self) -> str:
        """Human-readable block, one metric per line."""
        width = max((len(k) for k in self.metrics), default=0)
        target = f" -> {self.target}" if self.target else ""
        lines = [f"{self.job} [{self.collection}]{target} run {self.run_id}"]
        lines += [f"  {k:<{width}}  {v:>14,}" for k, v in self.metrics.items()]
        return "\n".join(lines)

    def add_counts(self, *queries: Callable[[], Mapping[str, int]]) -> None:
        """Add the metrics that each of ``queries`` (a callable running its own count query) returns, in their order.

        The queries run at once, each from its own thread on the job's session (Spark Connect and classic Spark
        both take concurrent queries): a count query alone leaves a core idle while it merges its partial results,
        so together they end sooner. Measured on Sail 0.7.2 with 8M rows on 2 cores: ``join-tags``' four count
        queries in 0.62-0.76 s at once, against 0.70-0.82 s one after another.

        Raises the error of the first query (in order) that failed, once every query has ended.
        """
        with ThreadPoolExecutor(max_workers=max(len(queries), 1), thread_name_prefix="run-counts") as pool:
            for found in pool.map(lambda query: query(), queries):
                self.metrics.update(found)


def record_run(
    lake: LakeSession, lake_dir: str | Path, summary: RunSummary, extra: Mapping[str, int] | None = None
) -> None:
    """Append ``summary`` (and the ``extra`` metrics) to ``<lake_dir>/runs``; a lake made before ``target``
    existed gains the column."""
    finished = datetime.now(UTC)
    metrics = {**summary.metrics, **(extra or {})}
    rows = {
        "run_id": [summary.run_id] * len(metrics),
        "job": [summary.job] * len(metrics),
        "collection": [summary.collection] * len(metrics),
        "target": [summary.target] * len(metrics),
        "engine": [lake.engine] * len(metrics),
        "started_at": [summary.started_at] * len(metrics),
        "finished_at": [finished] * len(metrics),
        "metric": list(metrics),
        "value": [int(v) for v in metrics.values()],
    }
    table = pa.table(rows, schema=RUNS_SCHEMA)
    write_table(
        lake,
        lake.spark.createDataFrame(table.to_pandas()),
        lake_table(lake_dir, RUNS_TABLE),
        mode="append",
        merge_schema=True,
    )

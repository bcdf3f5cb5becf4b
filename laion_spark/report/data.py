"""What the run report shows, gathered from the lake's tables (each one optional)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import Window
from pyspark.sql import functions as F

from ..aesthetic.buckets import BUCKETS
from ..aesthetic.distribution import bucket_order, read_score_distribution, score_distribution
from ..lake.layout import lake_table
from ..lake.tables import read_table, table_exists
from ..subsets.build import subset_counts
from ..subsets.params import SubsetsConfig

if TYPE_CHECKING:
    from ..engine.session import LakeSession

#: The stages of the subset funnel before the subsets themselves.
JOINED_STAGE, SAFETY_STAGE = "joined", "passed safety"


@dataclass
class ReportData:
    """Small pandas frames for the report; ``None`` where the table is not in the lake."""

    lake_dir: str
    distribution: pd.DataFrame | None = None
    funnel: pd.DataFrame | None = None
    samples: pd.DataFrame | None = None
    runs: pd.DataFrame | None = None
    embeddings: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def heads(self) -> list[str]:
        """Heads that scored the rows of ``aesthetic_tags``."""
        if self.distribution is None:
            return []
        return sorted(self.distribution["head"].unique())


def gather_report_data(
    lake: LakeSession, lake_dir: str | Path, config: SubsetsConfig, samples_per_bucket: int = 3, seed: int = 0
) -> ReportData:
    """Read (or aggregate) everything the report needs; a missing table becomes a note, not an error."""
    data = ReportData(lake_dir=str(lake_dir))
    if table_exists(lake, lake_table(lake_dir, "score_distribution")):
        data.distribution = read_score_distribution(lake, lake_dir)
    elif table_exists(lake, lake_table(lake_dir, "aesthetic_tags")):
        data.distribution = score_distribution(read_table(lake, lake_table(lake_dir, "aesthetic_tags")))
        data.notes.append("score_distribution is not stored yet: computed from aesthetic_tags (`laion-spark stats`).")
    else:
        data.notes.append("No aesthetic_tags table: run `laion-spark score-embeddings` first.")
    if table_exists(lake, lake_table(lake_dir, "joined")):
        data.funnel = _funnel(lake, lake_dir, config)
        data.samples = _samples(lake, lake_dir, samples_per_bucket, seed)
    else:
        data.notes.append("No joined table: run `laion-spark join-tags` for the funnel and sample captions.")
    if table_exists(lake, lake_table(lake_dir, "runs")):
        data.runs = latest_runs(read_table(lake, lake_table(lake_dir, "runs")).toPandas())
    if table_exists(lake, lake_table(lake_dir, "aesthetic_embeddings")):
        data.embeddings = (
            read_table(lake, lake_table(lake_dir, "aesthetic_embeddings"))
            .select("model", "head", "bucket", "count")
            .toPandas()
            .sort_values(["model", "head", "bucket"], ignore_index=True)
        )
    return data


def _funnel(lake: LakeSession, lake_dir: str | Path, config: SubsetsConfig) -> pd.DataFrame:
    """Rows per ``(stage, collection)``: joined, passed safety, then each subset table in the lake."""
    counts = subset_counts(read_table(lake, lake_table(lake_dir, "joined")), config)
    frames = [
        pd.DataFrame({"stage": JOINED_STAGE, "collection": counts["collection"], "rows": counts["joined"]}),
        pd.DataFrame({"stage": SAFETY_STAGE, "collection": counts["collection"], "rows": counts["passed_safety"]}),
    ]
    for spec in config.subsets:
        path = lake_table(lake_dir, spec.table)
        if not table_exists(lake, path):
            continue
        per_collection = read_table(lake, path).groupBy("collection").count().toPandas()
        frames.append(
            pd.DataFrame(
                {"stage": spec.table, "collection": per_collection["collection"], "rows": per_collection["count"]}
            )
        )
    funnel = pd.concat(frames, ignore_index=True)
    funnel["rows"] = funnel["rows"].astype("int64")
    return funnel


def _samples(lake: LakeSession, lake_dir: str | Path, per_bucket: int, seed: int) -> pd.DataFrame:
    """A few captions per score bucket from ``joined``, picked by a seeded hash (deterministic)."""
    joined = read_table(lake, lake_table(lake_dir, "joined")).where(
        F.col("aesthetic").isNotNull() & F.col("TEXT").isNotNull()
    )
    pick = Window.partitionBy("bucket_order").orderBy(F.xxhash64(F.col("hash"), F.lit(seed)), "URL", "TEXT")
    rows = (
        joined.withColumn("bucket_order", bucket_order(F.col("aesthetic")))
        .where(F.col("bucket_order") < len(BUCKETS) - 1)
        .withColumn("pick", F.row_number().over(pick))
        .where(F.col("pick") <= per_bucket)
        .select("bucket_order", "pick", "collection", "aesthetic", "TEXT", "URL")
        .toPandas()
    )
    rows["bucket"] = [BUCKETS[i] for i in rows["bucket_order"]]
    return rows.sort_values(["bucket_order", "pick"], ignore_index=True)


def latest_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The newest run of each ``(job, collection, target)``, one row per metric, ordered by when it finished.

    Runs recorded before ``target`` existed have it empty.
    """
    if runs.empty:
        return runs
    runs = runs.assign(target=runs["target"].fillna("") if "target" in runs else "")
    finished = runs.groupby("run_id")["finished_at"].max()
    runs = runs.assign(run_finished=runs["run_id"].map(finished))
    newest = runs.groupby(["job", "collection", "target"])["run_finished"].transform("max")
    latest = runs[runs["run_finished"] == newest]
    return latest.sort_values(["run_finished", "job", "collection"], kind="stable", ignore_index=True)

"""join-tags vs DuckDB: the LAION join of metadata that carries its hash with three tag tables, side by side.

    python -m bench.join [--rows 2000000,8000000] [--repeat 2] [--out bench-out/join]

For each size: N rows of laion2B-en metadata in its "joined" layout (8 part files, ``hash`` present: nothing
to compute), and three tag tables keyed by hash (~95% of the rows covered, 10% duplicate hashes with other
values, 1% orphans, a few null hashes). The same work on both sides: deduplicate each tag table (the largest
value per hash), LEFT JOIN the metadata with the three, write the result.

* **as a user runs it** (each a fresh process, best of ``--repeat``, interleaved): ``laion-spark join-tags``
  (engine start, footers checked, the join, a Delta partition, its run summary with every count) against the
  peer's own best script, DuckDB's SQL (dedupe + three LEFT JOINs + one parquet COPY, every core);
* **in-process** (session and connection already open, labelled): ``join_tags`` on Sail and the same DuckDB SQL.

Peak memory is the process's resident high-water mark. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from bench.fresh import Run, best, laion_spark, run_fresh, table, timed

if TYPE_CHECKING:
    from laion_spark.ingest.params import JoinTags

# Everything else is imported where it is used, so that the peer's process (``--peer``) loads DuckDB only.
COLLECTION = "laion2B-en"
WORDS = [
    "a",
    "the",
    "red",
    "blue",
    "vintage",
    "wedding",
    "table",
    "cake",
    "photo",
    "of",
    "dog",
    "cat",
    "city",
    "night",
    "café",
    "über",
    "日本",
    "русский",
    "🎉",
    "sunset",
    "beach",
    "portrait",
    "art",
    "poster",
    "logo",
    "house",
    "garden",
    "car",
    "mountain",
    "river",
    "street",
    "food",
    "coffee",
    "black",
    "white",
]
TAGS = {"aesthetic": "aesthetic", "watermark": "pwatermark", "safety": "prediction"}


def generate(folder: Path, rows: int, seed: int, *, joined: bool = False, duplicates: float = 0.02) -> None:
    """Metadata as 8 part files (raw, or with its ``hash`` as LAION's joined layout), plus three tag tables in which
    ``duplicates`` of the rows repeat a hash with another value; all vectorised."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from laion_spark.lake.collections import raw_schema
    from laion_spark.lake.hashing import laion_hash

    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    ids = pa.array(np.arange(rows, dtype=np.int64))
    url = pc.binary_join_element_wise(
        "https://img", pc.cast(pa.array(rng.integers(0, 500, rows)), pa.string()), ".example.com/",
        pc.cast(ids, pa.string()), "/", pa.array(words[rng.integers(0, len(words), rows)]), ".jpg", "",
    )  # fmt: skip
    caption = [pa.array(words[rng.integers(0, len(words), rows)]) for _ in range(6)]
    text = pc.binary_join_element_wise(*caption, " ")
    dup = rng.random(rows) < 0.01  # duplicate URL+TEXT pairs: copy the previous row
    take = np.where(dup, np.maximum(np.arange(rows) - 1, 0), np.arange(rows))
    url, text = url.take(pa.array(take)), text.take(pa.array(take))
    url = pc.if_else(pa.array(rng.random(rows) < 0.02), pa.scalar(None, pa.string()), url)
    text = pc.if_else(pa.array(rng.random(rows) < 0.02), pa.scalar(None, pa.string()), text)
    table = pa.table(
        {
            "SAMPLE_ID": ids,
            "URL": url,
            "TEXT": text,
            "HEIGHT": pa.array(rng.integers(64, 4096, rows, dtype=np.int32)),
            "WIDTH": pa.array(rng.integers(64, 4096, rows, dtype=np.int32)),
            "LICENSE": pa.array(np.full(rows, "?")),
            "NSFW": pa.array(np.where(rng.random(rows) < 0.9, "UNLIKELY", "UNSURE")),
            "similarity": pa.array(rng.uniform(0.28, 0.45, rows)),
        },
        schema=raw_schema(COLLECTION),
    )
    hashes = laion_hash(table["URL"], table["TEXT"])
    if joined:
        height, width = table["HEIGHT"], table["WIDTH"]
        table = table.select(["URL", "TEXT", "similarity"])
        table = table.append_column("WIDTH", height).append_column("HEIGHT", width)
        table = table.append_column("hash", pa.array(hashes)).select(JOINED_COLUMNS)
    (folder / "metadata").mkdir(parents=True)
    bounds = np.linspace(0, rows, 9).astype(int)
    for n, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        pq.write_table(table.slice(lo, hi - lo), folder / "metadata" / f"part-{n:05d}-bench-c000.snappy.parquet")
    for name, column in TAGS.items():
        covered = hashes[rng.random(rows) < 0.95]
        keys = np.concatenate(
            [
                covered,
                rng.choice(covered, int(rows * duplicates)),
                rng.integers(-(2**63), 2**63 - 1, rows // 100, dtype=np.int64),
            ]
        )
        values = rng.uniform(0, 10 if name == "aesthetic" else 1, len(keys)).astype(np.float32)
        key_array = pa.array(keys, mask=rng.random(len(keys)) < 0.0005)
        pq.write_table(pa.table({"hash": key_array, column: values}), folder / f"{name}.parquet")


JOINED_COLUMNS = ["URL", "TEXT", "WIDTH", "HEIGHT", "similarity", "hash"]


def duckdb_sql(folder: Path) -> dict[str, str]:
    """The peer's SQL for the data under ``folder``: ``metadata`` (its files, as a table), ``deduplicated`` (one
    query counting the rows of the three deduplicated tag tables) and ``joined`` (the metadata LEFT JOIN the three,
    in ``joined``'s columns)."""
    files = [str(p) for p in sorted((folder / "metadata").glob("*.parquet"))]
    dedup = {
        name: f"(SELECT hash, max({column}) AS v FROM read_parquet('{folder / name}.parquet') "
        "WHERE hash IS NOT NULL GROUP BY hash)"
        for name, column in TAGS.items()
    }
    deduplicated = "SELECT " + " + ".join(f"(SELECT count(*) FROM {table})" for table in dedup.values())
    joined = f"""
          SELECT m.URL, m.TEXT, m.WIDTH, m.HEIGHT, m.similarity, CAST(NULL AS VARCHAR) AS LANGUAGE, m.hash,
                 w.v AS pwatermark, s.v AS punsafe, a.v AS aesthetic, '{COLLECTION}' AS collection
          FROM read_parquet({files}) m LEFT JOIN {dedup["aesthetic"]} a USING (hash)
               LEFT JOIN {dedup["watermark"]} w USING (hash) LEFT JOIN {dedup["safety"]} s USING (hash)"""
    return {"metadata": f"read_parquet({files})", "deduplicated": deduplicated, "joined": joined}


def duckdb_connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection on every core."""
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count()}")
    return con


def copy_sql(query: str, out: Path) -> str:
    """DuckDB's statement writing ``query``'s rows to one snappy parquet file ``out``."""
    return f"COPY ({query}) TO '{out}' (FORMAT parquet, COMPRESSION snappy)"


def duckdb_join(folder: Path, out: Path) -> int:
    """The peer's own best script: DuckDB deduplicates each tag table, LEFT JOINs the metadata with the three and
    writes one snappy parquet file, on every core; returns the rows written."""
    con = duckdb_connect()
    (rows,) = con.execute(copy_sql(duckdb_sql(folder)["joined"], out)).fetchone()
    con.close()
    return int(rows)


def join_stage(folder: Path, lake_dir: Path) -> JoinTags:
    """The ``join-tags`` stage for the data under ``folder``, into the lake ``lake_dir``."""
    from laion_spark.ingest.params import JoinTags

    return JoinTags(
        metadata=folder / "metadata",
        collection=COLLECTION,
        lake=lake_dir,
        **{f"{name}_tags": folder / f"{name}.parquet" for name in TAGS},
    )


def join_args(folder: Path, lake_dir: Path) -> list[object]:
    """``join-tags``'s options for the data under ``folder``."""
    tags = [[f"--{name}-tags", folder / f"{name}.parquet"] for name in TAGS]
    return ["--metadata", folder / "metadata", "--collection", COLLECTION, "--lake", lake_dir, *sum(tags, [])]


def agreement(peer_out: Path, lake_dir: Path, rows: int) -> list[str]:
    """What differs between DuckDB's output and the lake's ``joined`` (read with ``deltalake``): the row count, and
    per tag the rows that have it and the sum of its values."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from laion_spark.ingest.params import JOINED_TABLE
    from laion_spark.lake.layout import lake_table

    tags = ["aesthetic", "pwatermark", "punsafe"]
    sides = {"duckdb": pq.read_table(peer_out, columns=tags)}
    sides["join-tags"] = DeltaTable(lake_table(lake_dir, JOINED_TABLE)).to_pyarrow_table(columns=tags)
    problems = [
        f"{name} wrote {side.num_rows:,} rows, not {rows:,}" for name, side in sides.items() if side.num_rows != rows
    ]
    for tag in tags:
        peer, ours = (
            (side[tag].length() - side[tag].null_count, pc.sum(side[tag].cast(pa.float64())).as_py())
            for side in sides.values()
        )
        if peer[0] != ours[0] or abs(peer[1] - ours[1]) > 1e-6 * max(abs(peer[1]), 1.0):
            problems.append(
                f"{tag}: duckdb has {peer[0]:,} values summing to {peer[1]}, join-tags {ours[0]:,} / {ours[1]}"
            )
    return problems


def bench_size(folder: Path, rows: int, repeat: int, seed: int) -> tuple[list[str], str]:
    """Both framings at one size, on the data under ``folder`` (generated first where missing): what disagrees
    between the two outputs, and the two tables as text."""
    from laion_spark.engine.factory import open_session
    from laion_spark.ingest import join_tags

    if not (folder / "safety.parquet").exists():
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        generate(folder, rows, seed, joined=True, duplicates=0.10)
        print(f"generated {rows:,} joined rows + 3 tag tables in {time.perf_counter() - started:.1f} s under {folder}")
    peer_out, lake_dir = folder / "duckdb-joined.parquet", folder / "lake"
    cli: dict[str, list[Run]] = {"duckdb script (peer)": [], "laion-spark join-tags": []}
    for _ in range(repeat):
        cli["duckdb script (peer)"].append(run_fresh([sys.executable, "-m", "bench.join", "--peer", folder, peer_out]))
        shutil.rmtree(lake_dir, ignore_errors=True)
        cli["laion-spark join-tags"].append(run_fresh(laion_spark("join-tags", *join_args(folder, lake_dir))))
    lake = open_session("sail")
    stage = join_stage(folder, lake_dir)
    inproc: dict[str, list[Run]] = {"duckdb (peer), in-process": [], "join_tags on sail, in-process": []}
    summaries = []
    for _ in range(repeat):
        inproc["duckdb (peer), in-process"].append(timed(lambda: duckdb_join(folder, peer_out)))
        shutil.rmtree(lake_dir, ignore_errors=True)
        inproc["join_tags on sail, in-process"].append(timed(lambda: summaries.append(join_tags(lake, stage))))
    lake.stop()
    problems = agreement(peer_out, lake_dir, rows)
    if summaries[-1].metrics["rows_out"] != rows:
        problems.append(f"join_tags' run summary: rows_out {summaries[-1].metrics['rows_out']:,}, not {rows:,}")
    unit = ("rows", rows)
    return problems, "\n\n".join(
        [
            table(
                f"{rows:,} rows, as a user runs it (fresh processes)", list(cli.items()), "duckdb script (peer)", unit
            ),
            table(f"{rows:,} rows, in-process", list(inproc.items()), "duckdb (peer), in-process", unit),
        ]
    )


#: The parts of the join, timed one by one (``--phases``): each as ``run_join`` does it and as DuckDB's SQL does.
PARTS = (
    "read the metadata (every column)",
    "deduplicate the three tag tables",
    "dedupe + LEFT JOIN, not written",
    "dedupe, its copy, LEFT JOIN + write",
    "the run summary's counts",
)


def phases(folder: Path, repeat: int) -> str:
    """Where the time goes, in this process: each of :data:`PARTS` on Sail, with the job's own frames, write and
    counts (``laion_spark.ingest.job``), beside the same part in DuckDB's SQL, interleaved, best of ``repeat``.
    Each run's CPU seconds (this process's, both engines run in it) say whether both cores were busy."""
    from pyspark.sql import Column
    from pyspark.sql import functions as F

    from laion_spark.engine.factory import open_session
    from laion_spark.ingest.job import JOB, count_queries, joined_rows, plan_join, read_tags, staged_tags, write_joined
    from laion_spark.ingest.metadata import read_metadata
    from laion_spark.ingest.tags import combine_tags
    from laion_spark.lake.runs import RunSummary

    lake_dir, peer_out = folder / "lake-phases", folder / "duckdb-phases.parquet"
    lake, con = open_session("sail"), duckdb_connect()
    plan = plan_join(join_stage(folder, lake_dir))
    tags = read_tags(lake, plan)
    metadata, rows = read_metadata(lake, plan.metadata), joined_rows(lake, plan, combine_tags(tags))
    # The counts read a copy of the deduplicated tags as the job's do; this one is made once, in a lake of its own.
    counted = ExitStack()
    combined = counted.enter_context(staged_tags(lake, replace(plan, lake_dir=str(folder / "lake-counts")), "-", tags))
    sql = duckdb_sql(folder)
    # Aggregates over every column, so that no engine skips reading or moving one.
    strings = ("URL", "TEXT")
    numbers = [c for c in JOINED_COLUMNS if c not in strings]
    with_tags = [*numbers, *(spec.column for spec, _ in tags)]

    def spark_reads(names: Sequence[str]) -> list[Column]:
        return [*(F.sum(F.length(c)) for c in strings), *(F.max(c) for c in names)]

    def sql_reads(names: Sequence[str]) -> str:
        return ", ".join([*(f"sum(length({c}))" for c in strings), *(f"max({c})" for c in names)])

    def write() -> None:  # as run_join does it: the deduplicated tags copied, the join written from the copy
        shutil.rmtree(lake_dir, ignore_errors=True)
        with staged_tags(lake, plan, "-", tags) as staged:
            write_joined(lake, plan, joined_rows(lake, plan, staged))

    ours = [
        lambda: metadata.agg(*spark_reads(numbers)).collect(),
        lambda: combine_tags(tags).agg(F.count(F.lit(1))).collect(),
        lambda: rows.agg(*spark_reads(with_tags)).collect(),
        write,
        lambda: RunSummary(JOB, COLLECTION).add_counts(*count_queries(lake, plan, tags, combined)),
    ]
    peer = [
        f"SELECT {sql_reads(numbers)} FROM {sql['metadata']}",
        sql["deduplicated"],
        f"SELECT {sql_reads(with_tags)} FROM ({sql['joined']})",
        copy_sql(sql["joined"], peer_out),
        None,  # DuckDB's script counts nothing
    ]
    runs: dict[tuple[int, str], list[Run]] = {}
    for _ in range(repeat):
        for n, (step, query) in enumerate(zip(ours, peer, strict=True)):
            runs.setdefault((n, "ours"), []).append(timed(step))
            if query is not None:
                runs.setdefault((n, "peer"), []).append(timed(lambda q=query: con.execute(q).fetchall()))
    counted.close()
    lake.stop()
    con.close()
    shutil.rmtree(lake_dir, ignore_errors=True)
    peer_out.unlink(missing_ok=True)
    width = max(map(len, PARTS)) + 2
    lines = [
        f"{plan.metadata.rows:,} rows, in-process, part by part (best of {repeat}, interleaved; cpu s: the "
        "process's CPU time in that run)",
        f"{'':<{width}}{'sail s':>8}{'cpu s':>7}{'duckdb s':>10}{'cpu s':>7}{'x duckdb':>10}",
    ]
    for n, part in enumerate(PARTS):
        mine = best(runs[n, "ours"])
        cells = f"{part:<{width}}{mine.seconds:>8.2f}{mine.cpu_seconds:>7.1f}"
        if (n, "peer") in runs:
            theirs = best(runs[n, "peer"])
            cells += f"{theirs.seconds:>10.2f}{theirs.cpu_seconds:>7.1f}{mine.seconds / theirs.seconds:>10.2f}"
        else:
            cells += f"{'-':>10}{'-':>7}{'-':>10}"
        lines.append(cells)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="2000000,8000000", help="comma-separated sizes")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-out/join"))
    parser.add_argument(
        "--phases", action="store_true", help="also time each part of the join, ours beside DuckDB's, in-process"
    )
    parser.add_argument("--peer", nargs=2, type=Path, metavar=("FOLDER", "OUT"), help="run the DuckDB script only")
    args = parser.parse_args(argv)
    if args.peer:
        duckdb_join(*args.peer)
        return
    import pyarrow as pa

    from laion_spark.lake.hashing import laion_hash

    laion_hash(pa.array(["warm"]), pa.array(["up"]))  # the generator's hash compiles once
    problems = []
    for rows in (int(r) for r in args.rows.split(",")):
        folder = args.out / f"joined-rows-{rows}-seed-{args.seed}"
        found, tables = bench_size(folder, rows, args.repeat, args.seed)
        print(tables, flush=True)
        print()
        if args.phases:
            print(phases(folder, args.repeat), flush=True)
            print()
        problems += found
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()}; goal: join-tags at or below 1.0x DuckDB at 8M")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""join-tags vs DuckDB: the same raw-metadata + three-tag LAION join, side by side in one process.

    python -m bench.join [--rows 2000000] [--repeat 2] [--out bench-out/join]

Generates N raw laion2B-en metadata rows (8 part files; null URL/TEXT rows,
duplicate pairs) and three tag tables keyed by LAION's hash (~95% coverage,
2% conflicting duplicates, 1% orphans, a few null hashes), then times:

* **duckdb (peer)**: read the metadata parquet, compute LAION's hash, dedupe
  each tag table (max per hash), LEFT JOIN, swap WIDTH/HEIGHT, rename
  ``prediction``, write parquet, then the same run counts as ours (rows out,
  null URL+TEXT, rows without each tag, tag duplicates/null hashes). DuckDB has
  no murmur3_x64_128, so the hash is computed *in Python with
  laion_spark.lake.hashing.laion_hash over the Arrow table DuckDB returns* and the
  table is handed back to DuckDB (the peer gets the same compiled hash we use).
* **laion-spark on sail**: ``join_tags`` on the embedded Sail engine writing
  Delta (session already open: engine start is printed separately), including
  its run summary and the ``runs`` table append.

The best of ``--repeat`` runs is reported for each. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from laion_spark.engine.factory import open_session
from laion_spark.ingest import join_tags
from laion_spark.ingest.params import JoinTags
from laion_spark.lake.collections import raw_schema
from laion_spark.lake.hashing import laion_hash

COLLECTION = "laion2B-en"
WORDS = np.array(
    [
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
)
TAGS = {"aesthetic": "aesthetic", "watermark": "pwatermark", "safety": "prediction"}


def generate(folder: Path, rows: int, seed: int) -> None:
    """Raw metadata as 8 part files plus three tag tables, all vectorised."""
    rng = np.random.default_rng(seed)
    ids = pa.array(np.arange(rows, dtype=np.int64))
    url = pc.binary_join_element_wise(
        "https://img", pc.cast(pa.array(rng.integers(0, 500, rows)), pa.string()), ".example.com/",
        pc.cast(ids, pa.string()), "/", pa.array(WORDS[rng.integers(0, len(WORDS), rows)]), ".jpg", "",
    )  # fmt: skip
    words = [pa.array(WORDS[rng.integers(0, len(WORDS), rows)]) for _ in range(6)]
    text = pc.binary_join_element_wise(*words, " ")
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
    (folder / "metadata").mkdir(parents=True)
    bounds = np.linspace(0, rows, 9).astype(int)
    for n, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        pq.write_table(table.slice(lo, hi - lo), folder / "metadata" / f"part-{n:05d}-bench-c000.snappy.parquet")
    hashes = laion_hash(table["URL"], table["TEXT"])
    for name, column in TAGS.items():
        covered = hashes[rng.random(rows) < 0.95]
        keys = np.concatenate(
            [covered, rng.choice(covered, rows // 50), rng.integers(-(2**63), 2**63 - 1, rows // 100, dtype=np.int64)]
        )
        values = rng.uniform(0, 10 if name == "aesthetic" else 1, len(keys)).astype(np.float32)
        key_array = pa.array(keys, mask=rng.random(len(keys)) < 0.0005)
        pq.write_table(pa.table({"hash": key_array, column: values}), folder / f"{name}.parquet")


def run_duckdb(folder: Path, out: Path) -> dict[str, int]:
    """The peer: DuckDB SQL for everything but the hash, computed with laion_hash on DuckDB's Arrow output."""
    con = duckdb.connect()
    files = [str(p) for p in sorted((folder / "metadata").glob("*.parquet"))]
    meta = con.sql(
        f"SELECT URL, TEXT, HEIGHT AS WIDTH, WIDTH AS HEIGHT, similarity FROM read_parquet({files})"
    ).to_arrow_table()
    meta = meta.append_column("hash", pa.array(laion_hash(meta["URL"], meta["TEXT"])))
    con.register("meta", meta)
    dedup = {
        name: f"(SELECT hash, max({column}) AS v FROM read_parquet('{folder / name}.parquet') "
        "WHERE hash IS NOT NULL GROUP BY hash)"
        for name, column in TAGS.items()
    }
    con.execute(
        f"""COPY (
          SELECT m.URL, m.TEXT, m.WIDTH, m.HEIGHT, m.similarity, CAST(NULL AS VARCHAR) AS LANGUAGE, m.hash,
                 w.v AS pwatermark, s.v AS punsafe, a.v AS aesthetic, '{COLLECTION}' AS collection
          FROM meta m LEFT JOIN {dedup["aesthetic"]} a USING (hash) LEFT JOIN {dedup["watermark"]} w USING (hash)
                      LEFT JOIN {dedup["safety"]} s USING (hash)
        ) TO '{out}' (FORMAT parquet, COMPRESSION snappy)"""
    )
    counts = con.execute(
        f"""SELECT count(*), count_if(URL IS NULL AND TEXT IS NULL), count_if(aesthetic IS NULL),
                   count_if(pwatermark IS NULL), count_if(punsafe IS NULL) FROM read_parquet('{out}')"""
    ).fetchall()[0]
    metrics = dict(
        zip(["rows_out", "rows_null_url_and_text", "without_a", "without_w", "without_s"], counts, strict=True)
    )
    for name in TAGS:
        total, with_hash, distinct = con.execute(
            f"SELECT count(*), count(hash), count(DISTINCT hash) FROM read_parquet('{folder / name}.parquet')"
        ).fetchall()[0]
        metrics[f"{name}_duplicates_dropped"] = with_hash - distinct
        metrics[f"{name}_null_hash_dropped"] = total - with_hash
    con.close()
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-out/join"))
    args = parser.parse_args()

    folder = args.out / f"rows-{args.rows}-seed-{args.seed}"
    if not (folder / "safety.parquet").exists():
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        generate(folder, args.rows, args.seed)
        print(f"generated {args.rows:,} rows + 3 tag tables in {time.perf_counter() - started:.1f} s under {folder}")
    laion_hash(pa.array(["warm"]), pa.array(["up"]))  # load the compiled hash once, for both sides

    started = time.perf_counter()
    lake = open_session("sail")
    sail_start = time.perf_counter() - started

    peer_runs, ours_runs = [], []
    for attempt in range(args.repeat):
        with Timer(peer_runs):
            peer = run_duckdb(folder, folder / "duckdb-joined.parquet")
        lake_dir = folder / f"lake-{attempt}"
        shutil.rmtree(lake_dir, ignore_errors=True)
        with Timer(ours_runs):
            ours = join_tags(
                lake,
                JoinTags(
                    metadata=folder / "metadata",
                    collection=COLLECTION,
                    lake=lake_dir,
                    **{f"{name}_tags": folder / f"{name}.parquet" for name in TAGS},
                ),
            )
    lake.stop()

    assert peer["rows_out"] == ours.metrics["rows_out"] == args.rows, (peer, ours.metrics)
    for name in TAGS:
        assert peer[f"{name}_duplicates_dropped"] == ours.metrics[f"{name}_duplicates_dropped"], name

    (peer_wall, peer_cpu), (ours_wall, ours_cpu) = min(peer_runs), min(ours_runs)
    print(
        f"\nLAION join: {args.rows:,} raw metadata rows + 3 tag tables, best of {args.repeat}, {os.cpu_count()} cores"
    )
    print(f"{'engine':<30}{'wall s':>8}{'rows/s':>12}{'ratio':>7}{'cpu s':>8}{'ratio':>7}")
    for name, wall, cpu in (
        ("duckdb (peer)", peer_wall, peer_cpu),
        ("laion-spark join-tags, sail", ours_wall, ours_cpu),
    ):
        print(
            f"{name:<30}{wall:>8.2f}{args.rows / wall:>12,.0f}{wall / peer_wall:>7.2f}{cpu:>8.2f}{cpu / peer_cpu:>7.2f}"
        )
    print(
        f"sail engine start (not included): {sail_start:.2f} s; goal: wall ratio <= 1.5; load average {os.getloadavg()}"
    )


class Timer:
    """Appends (wall s, process CPU s) of the ``with`` block to a list; CPU covers every thread of the process."""

    def __init__(self, runs: list[tuple[float, float]]) -> None:
        self.runs = runs

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runs.append((time.perf_counter() - self.wall, time.process_time() - self.cpu))


if __name__ == "__main__":
    main()

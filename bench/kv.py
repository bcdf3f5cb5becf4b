"""build-kv vs static_ondisk_kv: LAION's on-disk hash -> score KV file, built and read side by side.

    python -m bench.kv [--rows 5000000,20000000] [--repeat 2] [--queries 100000] [--out bench-out/kv]

For each size, generated once per size and seed under ``OUT/rows-N-seed-S/`` and reused: N unique random int64
hashes with float16-representable scores, in random order, as a Delta table (what the lake's ``aesthetic_tags``
looks like), and the same rows sorted by hash as one parquet file (``static_ondisk_kv.parquet_to_file`` needs
sorted input; LAION sorts with Spark first, ``sort_parquet``, not timed here).

* **as a user runs it** (each a fresh process, best of ``--repeat``, interleaved): the peer's own script,
  ``python -m bench.kv --peer SORTED_PARQUET OUT`` (``parquet_to_file``, its Python loop per row, tqdm bar
  silenced; that process imports static_ondisk_kv and pyarrow only), against ``laion-spark build-kv --table
  DELTA_TABLE --value-columns aesthetic --out OUT`` (engine start, read, range-partition, sort, encode, write,
  fragments joined). Both output files are removed before each run (build-kv would replace an existing one;
  the peer truncates it);
* **in-process** (labelled): ``parquet_to_file`` in this process, ``build_kv`` on an already open Sail session
  (after one untimed warm-up build that loads the compiled kernels and plans the first queries), and our write
  step alone (``write_records`` on the sorted parquet); the session start and the warm-up are printed apart;
* **lookups** (in-process only): ``--queries`` keys, half present, half absent; the peer's ``OnDiskKV[k]`` per
  key, our vectorised ``KV.get_batch`` and our ``KV.get`` per key (after one untimed ``get_batch`` call).

Every KV file written (peer and ours, both framings) must be byte-identical to the peer's script's, and the
lookups must agree: else the run exits 1. Peak memory is the process's resident high-water mark. No timing is
asserted anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import io
import os
import shutil
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from static_ondisk_kv import OnDiskKV, parquet_to_file

from bench.fresh import Run, laion_spark, run_fresh, table, timed

# laion-spark's modules are imported where they are used, so that the peer's process (``--peer``) loads only
# what its own script needs.
if TYPE_CHECKING:
    from laion_spark.engine.session import LakeSession
    from laion_spark.kv.build import KVBuildResult
    from laion_spark.kv.reader import KV

TABLE, SORTED = "aesthetic_tags", "sorted.parquet"
PEER_CLI, OURS_CLI = "peer script (static_ondisk_kv)", "laion-spark build-kv"
PEER_IN, OURS_IN, STEP_IN = (
    "parquet_to_file (peer), in-process",
    "build_kv on sail, in-process",
    "write_records only, in-process",
)
PEER_GET, BATCH_GET, SINGLE_GET = "OnDiskKV[k] per key (peer)", "KV.get_batch", "KV.get per key"


def make_rows(rows: int, seed: int) -> pa.Table:
    """``rows`` unique random hashes (unsorted) with scores in [0, 10) exactly representable in float16."""
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(-(2**63), 2**63 - 1, rows + rows // 1000 + 16, dtype=np.int64))
    keys = rng.permutation(keys)[:rows]
    scores = (rng.random(rows) * 10).astype(np.float16).astype(np.float32)
    return pa.table({"hash": keys, "aesthetic": scores})


def generate(folder: Path, rows: int, seed: int) -> None:
    """The rows in random order as a Delta table (written on an in-process Sail session, as the lake writes its
    tables), then sorted by hash as one parquet file, renamed into place last: its presence marks the folder
    complete."""
    from laion_spark.engine.factory import open_session
    from laion_spark.lake.tables import write_table

    folder.mkdir(parents=True)
    data = make_rows(rows, seed)
    shuffled = folder / "shuffled"  # 8 part files: the table is written as several files, as aesthetic_tags is
    shuffled.mkdir()
    bounds = np.linspace(0, rows, 9).astype(int)
    for n, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        pq.write_table(data.slice(lo, hi - lo), shuffled / f"part-{n:05d}.parquet")
    lake = open_session("sail")
    try:
        write_table(lake, lake.spark.read.parquet(str(shuffled)), folder / TABLE, mode="overwrite")
    finally:
        lake.stop()
    shutil.rmtree(shuffled)
    partial = folder / f"{SORTED}.partial"
    pq.write_table(data.sort_by("hash"), partial)
    partial.rename(folder / SORTED)


def peer_build(sorted_parquet: Path, out: Path) -> None:
    """The peer's script: ``parquet_to_file`` on the sorted rows, float16 scores, its tqdm bar silenced."""
    with contextlib.redirect_stderr(io.StringIO()):
        parquet_to_file(str(sorted_parquet), str(out), value_columns=["aesthetic"], value_format="e")


def our_write_step(sorted_parquet: Path, out: Path) -> None:
    """Our write step alone: the sorted parquet to a KV file, batch by batch."""
    from laion_spark.kv.records import write_records

    with open(out, "wb") as sink:
        for batch in pq.ParquetFile(sorted_parquet).iter_batches(batch_size=1 << 20):
            keys = batch.column(0).to_numpy()
            scores = batch.column(1).to_numpy(zero_copy_only=False)
            write_records(sink, keys, [scores], "e")


def fresh(argv: list[object], out: Path) -> Run:
    """``argv`` in a fresh process, after removing the file ``out`` it writes."""
    out.unlink(missing_ok=True)
    return run_fresh(argv)


def as_a_user(folder: Path, repeat: int) -> dict[str, list[Run]]:
    """The peer's script and ``laion-spark build-kv``, each in fresh processes, interleaved."""
    runs: dict[str, list[Run]] = {PEER_CLI: [], OURS_CLI: []}
    peer = [sys.executable, "-m", "bench.kv", "--peer", folder / SORTED, folder / "peer-cli.kv"]
    ours = laion_spark(
        "build-kv", "--table", folder / TABLE, "--value-columns", "aesthetic", "--out", folder / "ours-cli.kv"
    )
    for _ in range(repeat):
        runs[PEER_CLI].append(fresh(peer, folder / "peer-cli.kv"))
        runs[OURS_CLI].append(fresh(ours, folder / "ours-cli.kv"))
    return runs


def in_process(folder: Path, repeat: int) -> tuple[dict[str, list[Run]], str]:
    """``parquet_to_file``, ``build_kv`` on an open Sail session and ``write_records``, interleaved; the runs and a
    line on what was left out of them (session start, warm-up build, key ranges)."""
    from laion_spark.engine.factory import open_session
    from laion_spark.kv.build import build_kv
    from laion_spark.kv.params import BuildKV

    def build(lake: LakeSession, out: Path) -> KVBuildResult:
        out.unlink(missing_ok=True)
        return build_kv(lake, BuildKV(table=str(folder / TABLE), out=str(out), value_columns=("aesthetic",)))

    started = time.perf_counter()
    lake = open_session("sail")
    start_s = time.perf_counter() - started
    runs: dict[str, list[Run]] = {PEER_IN: [], OURS_IN: [], STEP_IN: []}
    results: list[KVBuildResult] = []
    try:
        warm_up = timed(lambda: build(lake, folder / "ours-warm-up.kv"))
        for _ in range(repeat):
            runs[PEER_IN].append(timed(lambda: peer_build(folder / SORTED, folder / "peer.kv")))
            runs[OURS_IN].append(timed(lambda: results.append(build(lake, folder / "ours.kv"))))
            runs[STEP_IN].append(timed(lambda: our_write_step(folder / SORTED, folder / "write-records.kv")))
    finally:
        lake.stop()
    result = results[-1]
    note = (
        f"not in the table: open_session {start_s:.2f} s (only the first in a process starts Sail), warm-up "
        f"build_kv {warm_up.seconds:.2f} s; "
        f"build_kv: {result.ranges} key range(s), {result.record_size}-byte records"
    )
    return runs, note


def peer_lookups(peer: OnDiskKV, queries: np.ndarray) -> np.ndarray:
    """static_ondisk_kv, one key at a time (absent: ValueError, or struct.error past the last key)."""
    values = np.full(queries.shape[0], np.nan, dtype=np.float32)
    for i, key in enumerate(queries.tolist()):
        try:
            values[i] = peer[key][0]
        except (ValueError, struct.error):
            pass
    return values


def single_lookups(kv: KV, queries: np.ndarray) -> np.ndarray:
    """Our ``kv.get`` one key at a time."""
    values = np.full(queries.shape[0], np.nan, dtype=np.float32)
    for i, key in enumerate(queries.tolist()):
        found = kv.get(key)
        if found is not None:
            values[i] = found[0]
    return values


def make_queries(folder: Path, count: int, seed: int) -> np.ndarray:
    """``count`` keys in random order: half drawn from the table, half random (almost surely absent)."""
    rng = np.random.default_rng(seed + 1)
    keys = pq.read_table(folder / SORTED, columns=["hash"]).column("hash").to_numpy()
    half = count // 2
    queries = np.concatenate([rng.choice(keys, half), rng.integers(-(2**63), 2**63 - 1, count - half, dtype=np.int64)])
    rng.shuffle(queries)
    return queries


def lookups(folder: Path, queries: np.ndarray, repeat: int) -> tuple[dict[str, list[Run]], bool, int]:
    """The three lookups on the peer's file and ours, interleaved; the runs, whether all three agree, and how many
    queries were found."""
    from laion_spark.kv.reader import KV

    peer = OnDiskKV(file=str(folder / "peer-cli.kv"), key_format="q", value_format="e")
    kv = KV(folder / "ours-cli.kv")
    kv.get_batch(queries[:1])  # loads the compiled search (numba cache)
    steps: dict[str, Callable[[], np.ndarray]] = {
        PEER_GET: lambda: peer_lookups(peer, queries),
        BATCH_GET: lambda: kv.get_batch(queries)[0][:, 0],
        SINGLE_GET: lambda: single_lookups(kv, queries),
    }
    runs: dict[str, list[Run]] = {name: [] for name in steps}
    values: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        for name, step in steps.items():
            runs[name].append(timed(lambda step=step, name=name: values.__setitem__(name, step())))
    found = int(kv.get_batch(queries)[1].sum())
    kv.close()
    agree = all(np.array_equal(values[PEER_GET], v, equal_nan=True) for v in values.values())
    return runs, agree, found


def identical(folder: Path) -> bool:
    """Every KV file written under ``folder`` is byte-identical to the peer's script's."""
    reference = folder / "peer-cli.kv"
    others = [p for p in folder.glob("*.kv") if p != reference]
    return len(others) == 5 and all(filecmp.cmp(reference, p, shallow=False) for p in others)


def bench_size(rows: int, repeat: int, queries: int, seed: int, out: Path) -> tuple[str, bool]:
    """Both framings and the lookups at one size: the tables as text, and whether every check passed."""
    folder = out / f"rows-{rows}-seed-{seed}"
    if not (folder / SORTED).exists():
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        generate(folder, rows, seed)
        print(f"generated {rows:,} rows (Delta table + sorted parquet) in {time.perf_counter() - started:.1f} s")
    for stale in folder.glob("*.kv"):
        stale.unlink()
    cli = as_a_user(folder, repeat)
    inproc, note = in_process(folder, repeat)
    lookup, agree, found = lookups(folder, make_queries(folder, queries, seed), repeat)
    same = identical(folder)
    unit = ("rows", rows)
    text = "\n\n".join(
        [
            table(f"{rows:,} rows, as a user runs it (fresh processes)", list(cli.items()), PEER_CLI, unit),
            table(f"{rows:,} rows, in-process", list(inproc.items()), PEER_IN, unit) + f"\n{note}",
            table(
                f"{queries:,} lookups ({found:,} present) in {rows:,} rows, in-process",
                list(lookup.items()),
                PEER_GET,
                ("queries", queries),
            ),
            f"files byte-identical: {'yes' if same else 'NO'}; lookups agree: {'yes' if agree else 'NO'}",
        ]
    )
    return text, same and agree


def main(argv: list[str] | None = None) -> None:
    """Run every size (or, with ``--peer``, the peer's script alone) and print the tables; exit 1 on a mismatch."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="5000000,20000000", help="comma-separated sizes")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-out/kv"))
    parser.add_argument("--peer", nargs=2, type=Path, metavar=("SORTED_PARQUET", "OUT"), help="run the peer only")
    args = parser.parse_args(argv)
    if args.peer:
        peer_build(*args.peer)
        return
    passed = True
    for rows in (int(r) for r in args.rows.split(",")):
        text, ok = bench_size(rows, args.repeat, args.queries, args.seed, args.out.absolute())
        print(text, flush=True)
        print()
        passed = passed and ok
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()}; goal: build-kv at least 3x static_ondisk_kv at "
        "20M, CLI end to end (a time ratio x peer at or below 0.33)"
    )
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

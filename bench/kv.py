"""Side by side: static_ondisk_kv against laion-spark's KV build and lookups.

    python -m bench.kv [--rows 1000000] [--queries 100000] [--repeat 3] [--out bench-out/kv]

The same rows for both: random int64 hashes (unique) with float16-representable
scores, sorted by hash (``static_ondisk_kv.parquet_to_file`` needs sorted input;
LAION sorts it with Spark first, ``sort_parquet``). The peer reads them as a
parquet file, we read them as a Delta table; all files must be byte-identical.
Build rows (best of ``--repeat``, after one untimed build of ours that loads
the compiled kernels and plans the first Spark queries):

* ``static_ondisk_kv.parquet_to_file``: its Python loop over the sorted rows;
* ``laion-spark build_kv (Sail)``: read the Delta table, count, range-partition,
  order, encode and write each range's fragment inside the tasks, join the
  fragments, on an already started Sail session (its start is shown apart);
* the same on the same rows stored in random order (what ``aesthetic_tags``
  looks like): the tasks radix-sort the keys;
* ``laion-spark write_records``: our write step alone, on the peer's sorted
  parquet.

Lookups: ``--queries`` keys, half present, half absent; the peer's per-key
``OnDiskKV[k]``, our vectorised ``KV.get_batch`` and our single ``KV.get``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from static_ondisk_kv import OnDiskKV, parquet_to_file

from laion_spark.engine.factory import open_session
from laion_spark.kv.build import build_kv
from laion_spark.kv.params import BuildKV
from laion_spark.kv.reader import KV
from laion_spark.kv.records import write_records
from laion_spark.lake.tables import write_table


def _timed(step: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def make_rows(rows: int, seed: int) -> pa.Table:
    """``rows`` unique random hashes (unsorted) with scores in [0, 10) exactly representable in float16."""
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(-(2**63), 2**63 - 1, rows + rows // 1000 + 16, dtype=np.int64))
    keys = rng.permutation(keys)[:rows]
    scores = (rng.random(rows) * 10).astype(np.float16).astype(np.float32)
    return pa.table({"hash": keys, "aesthetic": scores})


def our_write_step(sorted_parquet: Path, out: Path) -> None:
    """Our write step alone: the sorted parquet to a KV file, batch by batch."""
    with open(out, "wb") as sink:
        for batch in pq.ParquetFile(sorted_parquet).iter_batches(batch_size=1 << 20):
            keys = batch.column(0).to_numpy()
            scores = batch.column(1).to_numpy(zero_copy_only=False)
            write_records(sink, keys, [scores], "e")


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


def best(repeat: int, step: Callable[[], object]) -> tuple[float, object]:
    """The fastest of ``repeat`` runs of ``step``, and its result."""
    runs = [_timed(step) for _ in range(repeat)]
    return min(runs, key=lambda run: run[0])


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-out/kv"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    rows = make_rows(args.rows, args.seed)
    sorted_rows = rows.sort_by("hash")
    sorted_parquet, shuffled_parquet = args.out / "sorted.parquet", args.out / "shuffled.parquet"
    pq.write_table(sorted_rows, sorted_parquet)
    pq.write_table(rows, shuffled_parquet)
    start_s, lake = _timed(lambda: open_session("sail"))
    sorted_table, shuffled_table = args.out / "aesthetic_sorted", args.out / "aesthetic_shuffled"
    for source, table in ((sorted_parquet, sorted_table), (shuffled_parquet, shuffled_table)):
        write_table(lake, lake.spark.read.parquet(str(source)), table, mode="overwrite")

    peer_file, step_file = args.out / "peer.kv", args.out / "ours_step.kv"
    ours = {name: args.out / f"ours_{name}.kv" for name in ("first", "sorted", "shuffled")}

    def build(table: Path, name: str) -> object:
        ours[name].unlink(missing_ok=True)
        return build_kv(lake, BuildKV(table=table, out=ours[name], value_columns=["aesthetic"]))

    first_build, _ = _timed(lambda: build(sorted_table, "first"))
    with contextlib.redirect_stderr(io.StringIO()):  # the peer's tqdm bar
        peer_build, _ = best(
            args.repeat,
            lambda: parquet_to_file(str(sorted_parquet), str(peer_file), value_columns=["aesthetic"], value_format="e"),
        )
    sorted_build, result = best(args.repeat, lambda: build(sorted_table, "sorted"))
    shuffled_build, _ = best(args.repeat, lambda: build(shuffled_table, "shuffled"))
    our_step, _ = best(args.repeat, lambda: our_write_step(sorted_parquet, step_file))
    lake.stop()
    identical = all(peer_file.read_bytes() == path.read_bytes() for path in [*ours.values(), step_file])

    rng = np.random.default_rng(args.seed + 1)
    keys = rows.column("hash").to_numpy()
    half = args.queries // 2
    queries = np.concatenate(
        [rng.choice(keys, half), rng.integers(-(2**63), 2**63 - 1, args.queries - half, dtype=np.int64)]
    )
    rng.shuffle(queries)
    peer = OnDiskKV(file=str(peer_file), key_format="q", value_format="e")
    kv = KV(ours["sorted"])
    first_call, _ = _timed(lambda: kv.get_batch(queries[:1]))  # loads the compiled search (numba cache)
    peer_lookup, peer_values = best(args.repeat, lambda: peer_lookups(peer, queries))
    batch_lookup, (batch_values, found) = best(args.repeat, lambda: kv.get_batch(queries))
    single_lookup, single_values = best(args.repeat, lambda: single_lookups(kv, queries))
    agree = np.array_equal(peer_values, batch_values[:, 0], equal_nan=True) and np.array_equal(
        single_values, batch_values[:, 0], equal_nan=True
    )

    n, q = result.rows_written, args.queries
    lines = [
        ("build: static_ondisk_kv.parquet_to_file", peer_build, n, peer_build),
        (f"build: laion-spark build_kv (Sail, {result.ranges} range(s))", sorted_build, n, peer_build),
        ("build: laion-spark build_kv, rows in random order", shuffled_build, n, peer_build),
        ("build: laion-spark write_records only", our_step, n, peer_build),
        ("lookup: static_ondisk_kv OnDiskKV[k], per key", peer_lookup, q, peer_lookup),
        ("lookup: laion-spark KV.get_batch", batch_lookup, q, peer_lookup),
        ("lookup: laion-spark KV.get, per key", single_lookup, q, peer_lookup),
    ]
    print(f"{n:,} rows ({result.record_size}-byte records), {q:,} queries ({int(found.sum()):,} present)")
    print(f"best of {args.repeat} runs each")
    print(f"{'step':<54}{'seconds':>10}{'per second':>16}{'x peer':>9}")
    for label, seconds, count, peer_seconds in lines:
        print(f"{label:<54}{seconds:>10.3f}{count / seconds:>16,.0f}{peer_seconds / seconds:>9.1f}")
    print(
        f"Sail session start: {start_s:.2f} s; first build in the process: {first_build:.3f} s; "
        f"first get_batch call: {first_call:.3f} s (not in the rows above)"
    )
    print(f"files byte-identical: {'yes' if identical else 'NO'}; lookups agree: {'yes' if agree else 'NO'}")
    if not (identical and agree):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

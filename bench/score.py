"""score-embeddings vs a plain numpy + mmh3 loop: LAION's ViT-L/14 head over fp16 CLIP embedding shards, side by side.

    python -m bench.score [--rows 1000000,4000000] [--shards 8] [--repeat 2] [--head PATH] [--out bench-out/score]

For each size: N x 768 float16 unit embeddings in LAION's parquet_npy layout (``--shards`` shards of
``img_emb/img_emb_XXXX.npy`` + ``metadata/metadata_XXXX.parquet`` with url, caption, key; reused when complete),
scored with LAION's real ViT-L/14 linear head (``sa_0_4_vit_l_14_linear.pth``, read in place from
``../shared/reference/laion-aesthetic-predictor`` beside the repository, or ``--head``). The same work on both
sides: read every shard, score it, compute LAION's hash of url + caption, write (hash, aesthetic).

* **as a user runs it** (each a fresh process, best of ``--repeat``, interleaved): ``laion-spark score-embeddings``
  into a lake removed before each run, so each is a first run (engine start, planning from the file headers, the
  Delta tables, the run summary), against the peer's own best script (``--peer``: per shard ``np.load``, the head's
  weight and bias loaded once with torch, ``emb.astype(float32) @ w.T + b`` with numpy, ``mmh3.hash64`` per row,
  one parquet file per shard with pyarrow; it imports nothing of laion_spark);
* **in-process** (labelled; the Sail session already open, its start printed apart): ``score_embeddings`` on Sail,
  the peer's loop called in this process, and the peer's other tool, LAION's embedding-reader streaming the same
  shards with url/caption into the same numpy scoring and mmh3 hash.

``--shards`` is 8 at every size rather than proportional to N: the job runs one task per shard, so a fixed count
keeps its parallelism the same at each size and the shards grow with N (125k rows each at 1M, 500k at 4M).

Checked outside the timings, a failure exits 1: on the first shard the peer's scores match ``load_head(...).score``
to 1e-3 and its hashes match ``laion_hash`` exactly; after the runs both sides wrote N rows (ours: the run
summary's rows_scored + rows_rejected) and the CLI's aesthetic_tags scores, joined with the peer's on hash, differ
by less than 1e-2 (fp16 embeddings). Peak memory is the process's resident high-water mark; no timing is asserted.

laion_spark is imported only inside the functions that time or check our side: the ``--peer`` process is the
peer's script and loads none of it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.fresh import Run, laion_spark, run_fresh, table, timed

DIM = 768
COLLECTION = "laion2B-en"
REPO = Path(__file__).resolve().parents[1]
HEAD = REPO / ".." / "shared" / "reference" / "laion-aesthetic-predictor" / "sa_0_4_vit_l_14_linear.pth"
SCORE_TOLERANCE = 1e-3  # peer vs Head.score on the same shard (Head.score renormalises the fp16 rows)
CLI_TOLERANCE = 1e-2  # peer vs the scores the CLI wrote
_CHUNK = 65_536


def generate(folder: Path, rows: int, shards: int, seed: int = 0) -> Path:
    """Write (or reuse) ``rows`` unit float16 embeddings in ``shards`` parquet_npy shards under ``folder``."""
    marker = folder / f".complete-{rows}-{shards}-{seed}"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "img_emb").mkdir(parents=True)
    (folder / "metadata").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    bounds = np.linspace(0, rows, shards + 1).astype(int)
    for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        _write_embeddings(folder / "img_emb" / f"img_emb_{index:04d}.npy", int(stop - start), rng)
        pq.write_table(_metadata(int(start), int(stop)), folder / "metadata" / f"metadata_{index:04d}.parquet")
    marker.touch()
    return folder


def _write_embeddings(path: Path, rows: int, rng: np.random.Generator) -> None:
    """``rows`` random unit vectors as a float16 .npy, written in chunks."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(rows, DIM))
    for at in range(0, rows, _CHUNK):
        block = rng.standard_normal((min(_CHUNK, rows - at), DIM), dtype=np.float32)
        out[at : at + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out


def _metadata(start: int, stop: int) -> pa.Table:
    """url, caption and key of rows ``start`` .. ``stop`` (distinct urls), built with Arrow string kernels."""
    ids = np.arange(start, stop, dtype=np.int64)
    text = pc.cast(pa.array(ids), pa.string())
    bucket = pc.cast(pa.array(ids % 9973), pa.string())
    return pa.table(
        {
            "url": pc.binary_join_element_wise("https://img.example.com/", bucket, "/", text, ".jpg", ""),
            "caption": pc.binary_join_element_wise("a photo of thing number ", text, ""),
            "key": pc.utf8_lpad(text, width=9, padding="0"),
        }
    )


# The peer: its own best script, no laion_spark.


def peer_head(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The head's ``weight`` (1, d) and ``bias`` (1,) as float32 numpy arrays, from its torch state dict."""
    import torch

    state = torch.load(path, map_location="cpu")
    return state["weight"].numpy().astype(np.float32), state["bias"].numpy().astype(np.float32)


def peer_scores(emb: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``emb @ weight.T + bias`` in float32, one score per row."""
    return (emb.astype(np.float32) @ weight.T + bias).ravel()


def peer_hashes(urls: Sequence[str | None], captions: Sequence[str | None]) -> np.ndarray:
    """LAION's hash, one ``mmh3.hash64`` call per row."""
    return np.fromiter(
        (mmh3.hash64(((u or "") + (c or "")).encode("utf-8"))[0] for u, c in zip(urls, captions, strict=True)),
        dtype=np.int64,
        count=len(urls),
    )


def write_scores(path: Path, hashes: np.ndarray, scores: np.ndarray) -> None:
    """One parquet file of (hash int64, aesthetic float32)."""
    pq.write_table(pa.table({"hash": hashes, "aesthetic": scores.astype(np.float32)}), path)


def peer_script(embeddings: Path, head: Path, out: Path) -> int:
    """The peer's loop: per shard load, score, hash and write one parquet file; returns the rows written."""
    weight, bias = peer_head(head)
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    for npy in sorted((embeddings / "img_emb").glob("img_emb_*.npy")):
        index = npy.stem.split("_")[-1]
        meta = pq.read_table(embeddings / "metadata" / f"metadata_{index}.parquet", columns=["url", "caption"])
        scores = peer_scores(np.load(npy), weight, bias)
        hashes = peer_hashes(meta.column("url").to_pylist(), meta.column("caption").to_pylist())
        write_scores(out / f"part-{index}.parquet", hashes, scores)
        rows += len(scores)
    return rows


def embedding_reader_loop(embeddings: Path, head: Path, out: Path) -> int:
    """The peer's other tool: LAION's embedding-reader streaming the shards with url/caption, the same numpy
    scoring and mmh3 hash, one parquet file per batch; returns the rows written."""
    from embedding_reader import EmbeddingReader

    weight, bias = peer_head(head)
    out.mkdir(parents=True, exist_ok=True)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):  # its header scan's progress bar
        reader = EmbeddingReader(
            str(embeddings / "img_emb"),
            file_format="parquet_npy",
            meta_columns=["url", "caption"],
            metadata_folder=str(embeddings / "metadata"),
        )
    rows = 0
    for batch, (emb, meta) in enumerate(reader(batch_size=_CHUNK * 4, show_progress=False)):
        urls = pa.array(meta["url"], from_pandas=True).to_pylist()
        captions = pa.array(meta["caption"], from_pandas=True).to_pylist()
        write_scores(out / f"part-{batch:05d}.parquet", peer_hashes(urls, captions), peer_scores(emb, weight, bias))
        rows += len(emb)
    return rows


# Checks, outside the timings.


def check_peer(embeddings: Path, head: Path) -> list[str]:
    """On the first shard: the peer's scores vs ``load_head(...).score``, its hashes vs ``laion_hash``."""
    from laion_spark.aesthetic.heads import load_head
    from laion_spark.lake.hashing import laion_hash

    emb = np.load(embeddings / "img_emb" / "img_emb_0000.npy")
    meta = pq.read_table(embeddings / "metadata" / "metadata_0000.parquet", columns=["url", "caption"])
    weight, bias = peer_head(head)
    diff = float(np.max(np.abs(peer_scores(emb, weight, bias) - load_head(head).score(emb))))
    ours = np.asarray(laion_hash(meta.column("url"), meta.column("caption")), dtype=np.int64)
    mismatched = int(np.sum(peer_hashes(meta.column("url").to_pylist(), meta.column("caption").to_pylist()) != ours))
    problems = []
    if not diff <= SCORE_TOLERANCE:
        problems.append(f"peer scores differ from Head.score by up to {diff:.2e} (want <= {SCORE_TOLERANCE})")
    if mismatched:
        problems.append(f"{mismatched:,} peer hashes differ from laion_hash")
    return problems


def summary_total(metrics: dict[str, int]) -> int:
    """Rows a score_embeddings run wrote, from its summary's metrics: scored + rejected."""
    return metrics["rows_scored"] + metrics["rows_rejected"]


def recorded_total(lake_dir: Path) -> int:
    """:func:`summary_total` of the runs recorded in a lake's runs table (one run: the lake is new each time)."""
    from deltalake import DeltaTable

    from laion_spark.lake.layout import RUNS_TABLE, lake_table

    runs = DeltaTable(lake_table(lake_dir, RUNS_TABLE)).to_pyarrow_table(columns=["metric", "value"]).to_pylist()
    return summary_total(
        {m: sum(r["value"] for r in runs if r["metric"] == m) for m in ("rows_scored", "rows_rejected")}
    )


def check_cli(rows: int, peer_out: Path, lake_dir: Path) -> list[str]:
    """Both sides wrote ``rows`` rows and the CLI's scores match the peer's, joined on hash."""
    from deltalake import DeltaTable

    from laion_spark.aesthetic.params import TAGS_TABLE
    from laion_spark.lake.layout import lake_table

    peer = pq.read_table(peer_out)
    ours = DeltaTable(lake_table(lake_dir, TAGS_TABLE)).to_pyarrow_table(columns=["hash", "aesthetic"])
    joined = peer.join(ours, "hash", join_type="inner", right_suffix="_ours")
    diff = pc.max(pc.abs(pc.subtract(joined["aesthetic"], joined["aesthetic_ours"]))).as_py()
    written = {"peer script": peer.num_rows, "laion-spark (run summary)": recorded_total(lake_dir)}
    problems = [f"{name} wrote {n:,} rows, not {rows:,}" for name, n in written.items() if n != rows]
    if joined.num_rows != rows or diff is None or diff >= CLI_TOLERANCE:
        problems.append(f"{joined.num_rows:,} rows join on hash, max score difference {diff} (want < {CLI_TOLERANCE})")
    return problems


# Timing.


def warm(embeddings: Path) -> None:
    """Read every shard once so that no contender pays for a cold page cache."""
    for path in [*(embeddings / "img_emb").glob("*.npy"), *(embeddings / "metadata").glob("*.parquet")]:
        with path.open("rb") as f:
            while f.read(1 << 24):
                pass


def as_a_user(embeddings: Path, head: Path, work: Path, repeat: int) -> dict[str, list[Run]]:
    """Fresh processes, interleaved: the peer's script and ``laion-spark score-embeddings`` into a new lake."""
    peer = [sys.executable, "-m", "bench.score", "--peer", embeddings, head, work / "peer"]
    ours = laion_spark("score-embeddings", "--embeddings", embeddings, "--head", head, "--lake", work / "lake")
    runs: dict[str, list[Run]] = {"numpy + mmh3 script (peer)": [], "laion-spark score-embeddings": []}
    for _ in range(repeat):
        shutil.rmtree(work / "peer", ignore_errors=True)
        runs["numpy + mmh3 script (peer)"].append(run_fresh(peer, cwd=REPO))
        shutil.rmtree(work / "lake", ignore_errors=True)
        runs["laion-spark score-embeddings"].append(run_fresh(ours, cwd=REPO))
    return runs


def in_process(
    embeddings: Path, head: Path, work: Path, repeat: int
) -> tuple[dict[str, list[Run]], float, dict[str, int]]:
    """This process, interleaved: the peer's loop, embedding-reader, ``score_embeddings`` on an open Sail session;
    the runs, the session's start seconds (not in the runs) and the rows each contender wrote."""
    from laion_spark.aesthetic.params import ScoreEmbeddings
    from laion_spark.aesthetic.scoring import score_embeddings
    from laion_spark.engine.factory import open_session

    started = time.perf_counter()
    lake = open_session("sail")
    lake.spark.range(1).collect()  # the client connects on its first query: part of the start
    session_s = time.perf_counter() - started
    stage = ScoreEmbeddings(embeddings=str(embeddings), head=str(head), lake=str(work / "lake-inproc"))
    contenders: dict[str, Callable[[], int]] = {
        "numpy + mmh3 (peer), in-process": lambda: peer_script(embeddings, head, work / "peer-inproc"),
        "embedding-reader + mmh3, in-process": lambda: embedding_reader_loop(embeddings, head, work / "er-inproc"),
        "score_embeddings on sail, in-process": lambda: summary_total(score_embeddings(lake, stage).metrics),
    }
    runs: dict[str, list[Run]] = {name: [] for name in contenders}
    written: dict[str, int] = {}
    for _ in range(repeat):
        for name, step in contenders.items():
            for folder in ("peer-inproc", "er-inproc", "lake-inproc"):
                shutil.rmtree(work / folder, ignore_errors=True)
            run, written[name] = _timed_rows(step)
            runs[name].append(run)
    lake.stop()
    return runs, session_s, written


def _timed_rows(step: Callable[[], int]) -> tuple[Run, int]:
    """``step``'s wall time in this process, and the rows it returned."""
    rows: list[int] = []
    return timed(lambda: rows.append(step())), rows[0]


def bench_size(rows: int, args: argparse.Namespace) -> tuple[str, list[str]]:
    """Both framings at one size: the tables as text, and the failed checks."""
    work = args.out.resolve() / f"rows-{rows}-shards-{args.shards}"
    started = time.perf_counter()
    embeddings = generate(work / COLLECTION, rows, args.shards)
    print(f"data: {rows:,} x {DIM} float16 in {args.shards} shards under {embeddings} "
          f"({time.perf_counter() - started:.1f} s to generate or find)", flush=True)  # fmt: skip
    problems = check_peer(embeddings, args.head)
    warm(embeddings)
    cli = as_a_user(embeddings, args.head, work, args.repeat)
    problems += check_cli(rows, work / "peer", work / "lake")
    inproc, session_s, written = in_process(embeddings, args.head, work, args.repeat)
    problems += [f"{name} wrote {n:,} rows, not {rows:,}" for name, n in written.items() if n != rows]
    unit = ("rows", rows)
    fresh = table(
        f"{rows:,} rows, as a user runs it (fresh processes)", list(cli.items()), "numpy + mmh3 script (peer)", unit
    )
    here = table(f"{rows:,} rows, in-process", list(inproc.items()), "numpy + mmh3 (peer), in-process", unit)
    return f"{fresh}\n\n{here}\n(Sail session start, not counted above: {session_s:.2f} s)", problems


def main(argv: list[str] | None = None) -> None:
    """Each size's two tables, then the machine and the goal; exits 1 when a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000,4000000", help="comma-separated sizes (default 1M and 4M)")
    parser.add_argument("--shards", type=int, default=8, help="shards at every size (default 8)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per contender, best kept (default 2)")
    parser.add_argument("--head", type=Path, default=HEAD, help="head .pth (default: LAION's ViT-L/14 linear head)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/score"), help="data and output folder")
    parser.add_argument("--peer", nargs=3, type=Path, metavar=("EMBEDDINGS", "HEAD", "OUT"), help="peer script only")
    args = parser.parse_args(argv)
    if args.peer:
        peer_script(*args.peer)
        return
    args.head = args.head.resolve()
    if not args.head.is_file():
        parser.error(f"head {args.head} not found (--head PATH)")
    problems: list[str] = []
    for rows in (int(r) for r in args.rows.split(",")):
        text, failed = bench_size(rows, args)
        print(text, flush=True)
        print()
        problems += [f"{rows:,} rows: {problem}" for problem in failed]
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()}; "
          "goal: score-embeddings at least 2x the numpy loop's rows/s at 4M, CLI end to end (time ratio <= 0.5)")  # fmt: skip
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()

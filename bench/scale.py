"""Scale: how each Spark stage's cost grows with rows, measured at several sizes in one run.

    .venv/bin/python -m bench.scale [--max-rows 4000000] [--sizes 4] [--repeat 3] [--engine sail-server]
    .venv/bin/python -m bench.scale --from-json bench-out/scale/scale.json   # reprint and redraw only

Data (generated once under ``--data``, reused): LAION-shaped parts of
``--part-rows`` rows each. A part is what :func:`bench.join.generate` writes
(raw laion2B-en metadata in 8 files with null URL/TEXT rows and duplicate
pairs, watermark and safety tag tables with duplicates, orphans and null
hashes) plus one parquet_npy embedding shard holding a 768-d float16 unit
embedding for every metadata row (url/caption = the row's URL/TEXT), shaped by
:func:`laion_spark.sample.embeddings.embeddings_for_scores` so that the
synthetic ViT-L/14 head scores them with LAION's published distribution. Size
``N`` is the first ``N / part_rows`` parts (folders of links), so sizes share
their files: the largest holds ``N`` metadata rows and ``N`` embeddings.

For every size, in ascending order, on one engine session, each stage runs
through its library function into a fresh lake: ``score-embeddings`` ->
``join-tags`` (with the lake's ``aesthetic_tags``) -> ``subsets`` (the packaged
``pipeline.yaml``) -> ``stats`` -> ``aesthetic-embeddings`` -> ``build-kv``
of ``aesthetic_tags`` and of ``joined``'s watermark and safety tags (ranges of
``--kv-range-rows`` rows, so that every size takes the multi-range path a
5B-row build takes). A warm-up pass over one part comes first and is not
reported (compiled kernels, first query plans).

Measured per stage and size: wall seconds, rows/s (rows = metadata rows),
CPU seconds of the driver and of the engine processes (``/proc/<pid>/stat``),
peak RSS of the driver and of the engine (``VmHWM`` after a reset through
``/proc/<pid>/clear_refs``; engine = every process below the driver: the Sail
server with ``--engine sail-server`` (default), the JVM and Python workers with
``local``; with ``sail`` the engine runs inside the driver and only the sum is
known) and the engine's sampled anonymous RSS (heap, not mapped files), bytes
read (the sizes of the stage's input files), written (growth of the size's
output folder) and fetched from disk (``/proc/<pid>/io``), and the load
average when the stage started. Each size runs ``--repeat`` times, sizes
interleaved, and the fastest run of each stage is kept. Per stage,
``cost ~ N^k`` is fitted by least squares on log-log for wall and CPU seconds
(and printed for wall over the two largest sizes), and the driver's peak-RSS growth
is fitted against rows: a stage whose driver memory rises by more than
:data:`MEMORY_SLACK` over the measured range is flagged (rows funnelled through
the driver). Results go to ``<out>/scale.json``; the log-log figure is drawn
from that JSON. Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.join import generate as generate_metadata_and_tags
from laion_spark.aesthetic.bucket_embeddings import build_aesthetic_embeddings
from laion_spark.aesthetic.distribution import build_score_distribution
from laion_spark.aesthetic.heads import Head
from laion_spark.aesthetic.params import AestheticEmbeddings, ScoreDistribution, ScoreEmbeddings, head_name
from laion_spark.aesthetic.scoring import score_embeddings
from laion_spark.engine.factory import SAIL_ENV, open_session
from laion_spark.engine.session import LakeSession
from laion_spark.ingest import join_tags
from laion_spark.ingest.params import JoinTags
from laion_spark.kv.build import build_kv
from laion_spark.kv.params import BuildKV
from laion_spark.sample.distribution import draw_target_scores
from laion_spark.sample.embeddings import embeddings_for_scores, synthetic_head
from laion_spark.sample.seeding import stream
from laion_spark.subsets.build import build_subsets
from laion_spark.subsets.params import BuildSubsets

COLLECTION = "laion2B-en"
PART_ROWS = 250_000
#: Driver peak-RSS growth over the measured range above which a stage is flagged (rows through the driver).
MEMORY_SLACK = 16 << 20
#: A fitted exponent above this is not linear scaling.
K_LIMIT = 1.15
ENGINES = ("sail-server", "sail", "local")
_MIB = 1 << 20
_SERVER = """
import sys
from pysail.spark import SparkConnectServer
server = SparkConnectServer(ip="127.0.0.1", port=0)
server.start(background=True)
print(server.listening_address[1], flush=True)
sys.stdin.read()
server.stop()
"""


# ---------------------------------------------------------------- data


def _write_shard(part: Path, index: int, head: Head, seed: int) -> None:
    """The part's parquet_npy shard: an embedding for every metadata row, url/caption = URL/TEXT."""
    meta = pq.read_table(part / "metadata", columns=["URL", "TEXT"])
    rows = meta.num_rows
    rng = stream(seed, "scale-embeddings", str(index))
    embeddings = embeddings_for_scores(rng, head, draw_target_scores(rng, rows))
    np.save(part / f"img_emb_{index:04d}.npy", embeddings)
    keys = pa.array([f"{index:04d}{i:06d}" for i in range(rows)])
    table = pa.table({"url": meta["URL"], "caption": meta["TEXT"], "key": keys})
    pq.write_table(table, part / f"metadata_{index:04d}.parquet")


def generate_parts(data: Path, parts: int, part_rows: int, seed: int) -> Path:
    """Write (or reuse) ``parts`` parts under ``data`` and the synthetic head; return the head's file."""
    data.mkdir(parents=True, exist_ok=True)
    head_file = data / "synthetic-l14.pth"
    head = synthetic_head(seed, head_file)
    for index in range(parts):
        part = data / f"part-{index:04d}"
        marker = part / f".complete-{part_rows}-{seed}"
        if marker.exists():
            continue
        shutil.rmtree(part, ignore_errors=True)
        started = time.perf_counter()
        generate_metadata_and_tags(part, part_rows, seed + index)
        _write_shard(part, index, head, seed)
        marker.touch()
        print(f"  generated part {index} ({part_rows:,} rows) in {time.perf_counter() - started:.1f} s", flush=True)
    return head_file


def size_view(data: Path, rows: int, part_rows: int) -> Path:
    """A folder whose ``metadata/``, ``watermark/``, ``safety/`` and ``embeddings/`` link the first parts
    (made anew on every call: links are cheap, and the parts may have been regenerated)."""
    view = data / f"rows-{rows}-of-{part_rows}"
    shutil.rmtree(view, ignore_errors=True)
    scratch = view.with_name(view.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    for sub in ("metadata", "watermark", "safety", "embeddings/img_emb", "embeddings/metadata"):
        (scratch / sub).mkdir(parents=True)
    for index in range(rows // part_rows):
        part = (data / f"part-{index:04d}").resolve()
        for file in sorted((part / "metadata").glob("*.parquet")):
            (scratch / "metadata" / f"p{index:04d}-{file.name}").symlink_to(file)
        for tag in ("watermark", "safety"):
            (scratch / tag / f"p{index:04d}.parquet").symlink_to(part / f"{tag}.parquet")
        (scratch / "embeddings/img_emb" / f"img_emb_{index:04d}.npy").symlink_to(part / f"img_emb_{index:04d}.npy")
        (scratch / "embeddings/metadata" / f"metadata_{index:04d}.parquet").symlink_to(
            part / f"metadata_{index:04d}.parquet"
        )
    scratch.rename(view)
    return view


def tree_bytes(paths: Sequence[Path]) -> int:
    """Bytes of every file under ``paths`` (links followed; a missing path counts 0)."""
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return total


# ---------------------------------------------------------------- processes


def _status(pid: int | str) -> dict[str, int]:
    """``VmRSS``, ``VmHWM`` and ``RssAnon`` of a process in bytes (empty when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {m[1]: int(m[2]) * 1024 for m in re.finditer(r"^(VmRSS|VmHWM|RssAnon):\s+(\d+) kB", text, re.M)}


class AnonSampler(threading.Thread):
    """Samples the anonymous RSS (heap, not mapped files) of the driver and of the engine processes."""

    def __init__(self, engine: Sequence[int], interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.engine, self.interval = list(engine), interval
        self.driver_peak, self.engine_peak = 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.driver_peak = max(self.driver_peak, _status("self").get("RssAnon", 0))
            self.engine_peak = max(self.engine_peak, sum(_status(p).get("RssAnon", 0) for p in self.engine))
            if self.done.wait(self.interval):
                return

    def stop(self) -> None:
        """Take a last sample and end the thread."""
        self.done.set()
        self.join()


def _cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds of a process and of its waited-for children (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _disk_read_bytes(pid: int | str) -> int:
    """Bytes the process made the kernel fetch from storage (page-cache hits and mapped pages already cached: 0)."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0
    found = re.search(r"^read_bytes:\s+(\d+)", text, re.M)
    return int(found[1]) if found else 0


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reset_peak(pid: int | str) -> bool:
    """Reset the process's ``VmHWM`` to its current RSS (Linux ``clear_refs``); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Measurement:
    """One stage at one size."""

    stage: str
    rows: int
    seconds: float
    driver_cpu_s: float
    engine_cpu_s: float | None
    driver_rss_start: int
    driver_rss_peak: int
    driver_anon_peak: int
    engine_rss_start: int | None
    engine_rss_peak: int | None
    engine_anon_peak: int | None
    bytes_in: int
    bytes_out: int
    disk_read_bytes: int
    load: float
    peak_exact: bool

    @property
    def driver_growth(self) -> int:
        """Peak driver RSS above its RSS when the stage started."""
        return self.driver_rss_peak - self.driver_rss_start


@contextmanager
def measure(stage: str, rows: int, inputs: Sequence[Path], out_root: Path, separate_engine: bool) -> Iterator[list]:
    """Time ``stage`` and read its processes' CPU, peak RSS and bytes; the measurement lands in the yielded list."""
    found: list[Measurement] = []
    engine = descendants(os.getpid()) if separate_engine else []
    exact = all(_reset_peak(pid) for pid in ["self", *engine])
    driver_start = _status("self").get("VmRSS", 0)
    engine_start = sum(_status(pid).get("VmRSS", 0) for pid in engine)
    bytes_in, out_before = tree_bytes(inputs), tree_bytes([out_root])
    cpu_before = {pid: _cpu_seconds(pid) for pid in ["self", *engine]}
    disk_before = {pid: _disk_read_bytes(pid) for pid in ["self", *engine]}
    load = os.getloadavg()[0]
    sampler = AnonSampler(engine)
    sampler.start()
    started = time.perf_counter()
    try:
        yield found
    finally:
        seconds = time.perf_counter() - started
        sampler.stop()
    engine_now = descendants(os.getpid()) if separate_engine else []
    engine_cpu = sum(_cpu_seconds(pid) - cpu_before.get(pid, 0.0) for pid in engine_now)
    engine_peak = sum(_status(pid).get("VmHWM", 0) for pid in engine_now)
    found.append(
        Measurement(
            stage=stage,
            rows=rows,
            seconds=seconds,
            driver_cpu_s=_cpu_seconds("self") - cpu_before["self"],
            engine_cpu_s=engine_cpu if separate_engine else None,
            driver_rss_start=driver_start,
            driver_rss_peak=_status("self").get("VmHWM", 0),
            driver_anon_peak=sampler.driver_peak,
            engine_rss_start=engine_start if separate_engine else None,
            engine_rss_peak=engine_peak if separate_engine else None,
            engine_anon_peak=sampler.engine_peak if separate_engine else None,
            bytes_in=bytes_in,
            bytes_out=tree_bytes([out_root]) - out_before,
            disk_read_bytes=sum(_disk_read_bytes(p) - disk_before.get(p, 0) for p in ["self", *engine_now]),
            load=load,
            peak_exact=exact,
        )
    )


@contextmanager
def engine_session(engine: str) -> Iterator[LakeSession]:
    """A session on ``engine``; ``sail-server`` runs Sail in a child process so its memory is its own."""
    if engine == "sail":
        with open_session("sail") as lake:
            yield lake
        return
    if engine == "local":
        os.environ.setdefault("LAION_SPARK_MASTER", f"local[{os.cpu_count()}]")
        with open_session("local", table_format="parquet") as lake:
            yield lake
        return
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**SAIL_ENV, **os.environ},
    )  # fmt: skip
    try:
        port = int(server.stdout.readline())
        with open_session("remote", remote=f"sc://127.0.0.1:{port}") as lake:
            yield lake
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


# ---------------------------------------------------------------- stages


def stages(lake: LakeSession, view: Path, run: Path, head_file: Path, kv_range_rows: int, rows: int) -> list:
    """``(name, input paths, call)`` of every stage for one size, in pipeline order; each call checks its counts."""
    lake_dir, kv_dir = run / "lake", run / "kv"
    head = str(head_file)
    lake_head = head_name(head)  # as the lake's head columns hold it
    tags, joined = lake_dir / "aesthetic_tags", lake_dir / "joined"

    def score() -> None:
        summary = score_embeddings(
            lake, ScoreEmbeddings(embeddings=view / "embeddings", head=head, lake=lake_dir, collection=COLLECTION)
        )
        assert summary.metrics["rows_scored"] + summary.metrics["rows_rejected"] == rows, summary.metrics

    def join() -> None:
        summary = join_tags(
            lake,
            JoinTags(
                metadata=view / "metadata",
                collection=COLLECTION,
                lake=lake_dir,
                aesthetic_tags=tags,
                watermark_tags=view / "watermark",
                safety_tags=view / "safety",
                aesthetic_head=lake_head,
            ),
        )
        assert summary.metrics["rows_out"] == rows, summary.metrics

    def kv(name: str, table: Path, columns: list[str], where: str | None) -> Callable[[], None]:
        def build() -> None:
            kv_dir.mkdir(parents=True, exist_ok=True)
            result = build_kv(
                lake,
                BuildKV(
                    table=table,
                    out=kv_dir / name,
                    value_columns=columns,
                    on_duplicate="max",
                    where=where,
                    max_rows_per_range=kv_range_rows,
                    lake=lake_dir,
                ),
            )
            assert result.rows_in == rows, result

        return build

    return [
        ("score-embeddings", [view / "embeddings"], score),
        ("join-tags", [view / "metadata", view / "watermark", view / "safety", tags], join),
        ("subsets", [joined], lambda: build_subsets(lake, BuildSubsets(lake=lake_dir))),
        ("stats", [tags], lambda: build_score_distribution(lake, ScoreDistribution(lake=lake_dir))),
        (
            "aesthetic-embeddings",
            [view / "embeddings" / "img_emb"],
            lambda: build_aesthetic_embeddings(
                lake, AestheticEmbeddings(embeddings=[view / "embeddings"], head=head, lake=lake_dir)
            ),
        ),
        ("build-kv aesthetic", [tags], kv("aesthetic.kv", tags, ["aesthetic"], f"head = '{lake_head}'")),
        ("build-kv watermark+safety", [joined], kv("watermark_safety.kv", joined, ["pwatermark", "punsafe"], None)),
    ]


def run_size(lake: LakeSession, view: Path, run: Path, head_file: Path, args: argparse.Namespace, rows: int) -> list:
    """Every stage at one size, into a fresh folder ``run``; their measurements."""
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    found = []
    for name, inputs, call in stages(lake, view, run, head_file, args.kv_range_rows, rows):
        with measure(name, rows, inputs, run, separate_engine=args.engine != "sail") as measured:
            call()
        found += measured
    return found


# ---------------------------------------------------------------- fits


def fit_exponent(rows: Sequence[float], costs: Sequence[float]) -> float:
    """``k`` of ``cost ~ c * rows^k``: the least-squares slope of log(cost) on log(rows).

    Raises ValueError for fewer than two distinct sizes or a cost that is not positive.
    """
    x, y = np.asarray(rows, dtype=np.float64), np.asarray(costs, dtype=np.float64)
    if len(np.unique(x)) < 2 or x.shape != y.shape:
        raise ValueError(f"need costs at two or more distinct sizes, got rows {list(x)} and costs {list(y)}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError(f"rows and costs must be positive, got rows {list(x)} and costs {list(y)}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def memory_growth(rows: Sequence[float], peaks: Sequence[float], slack: float = MEMORY_SLACK) -> tuple[float, bool]:
    """``(bytes per row, grows)``: the least-squares slope of peak memory on rows, and whether that slope
    adds more than ``slack`` bytes over the measured range of rows (memory that grows with N)."""
    x, y = np.asarray(rows, dtype=np.float64), np.asarray(peaks, dtype=np.float64)
    if len(np.unique(x)) < 2 or x.shape != y.shape:
        raise ValueError(f"need peaks at two or more distinct sizes, got rows {list(x)} and peaks {list(y)}")
    slope = float(np.polyfit(x, y, 1)[0])
    return slope, bool(slope * (x.max() - x.min()) > slack)


def fits(results: Sequence[dict]) -> dict[str, dict]:
    """Per stage: wall and CPU exponents (all sizes; wall over the two largest), driver bytes per row, the flag."""
    out: dict[str, dict] = {}
    for stage in dict.fromkeys(r["stage"] for r in results):
        rows = [r for r in results if r["stage"] == stage]
        n = [r["rows"] for r in rows]
        cpu = [r["driver_cpu_s"] + (r["engine_cpu_s"] or 0.0) for r in rows]
        per_row, grows = memory_growth(n, [r["driver_rss_peak"] - r["driver_rss_start"] for r in rows])
        top = sorted(rows, key=lambda r: r["rows"])[-2:]
        out[stage] = {
            "k_wall": fit_exponent(n, [r["seconds"] for r in rows]),
            "k_cpu": fit_exponent(n, cpu),
            "k_wall_top": fit_exponent([r["rows"] for r in top], [r["seconds"] for r in top]),
            "rows_per_cpu_s": top[-1]["rows"] / (top[-1]["driver_cpu_s"] + (top[-1]["engine_cpu_s"] or 0.0)),
            "driver_bytes_per_row": per_row,
            "driver_memory_grows": grows,
        }
    return out


# ---------------------------------------------------------------- output


def machine() -> dict[str, object]:
    """What the figures came from: CPU model, cores, memory, load, versions."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = re.search(r"^Model name:\s+(.+)$", lscpu, re.M)
    memory = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    from importlib.metadata import version

    return {
        "cpu": model[1].strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "memory_bytes": int(memory[1]) * 1024 if memory else None,
        "python": platform.python_version(),
        "pyspark": version("pyspark"),
        "pysail": version("pysail"),
        "load_before": os.getloadavg(),
    }


def print_report(report: dict) -> None:
    """The table of every stage and size, then the fitted exponents and per-core rates."""
    info, config = report["machine"], report["config"]
    print(
        f"\n{info['cpu']}, {info['cores']} cores, {info['memory_bytes'] / (1 << 30):.1f} GiB; engine "
        f"{config['engine']}; best of {config['repeat']}; load before {info['load_before'][0]:.2f}, "
        f"after {info['load_after'][0]:.2f}"
    )
    print(
        f"{'stage':<26}{'rows':>10}{'wall s':>8}{'rows/s':>11}{'cpu s':>7}{'load':>6}{'driver MiB':>11}{'(+grow)':>8}"
        f"{'engine MiB':>11}{'(+grow)':>8}{'anon':>6}{'MB in':>7}{'out':>6}{'disk':>6}"
    )
    order = list(report["fits"])
    for r in sorted(report["results"], key=lambda r: (order.index(r["stage"]), r["rows"])):
        cpu = r["driver_cpu_s"] + (r["engine_cpu_s"] or 0.0)
        engine = f"{'in driver':>11}{'':>8}{'':>6}"
        if r["engine_rss_peak"] is not None:
            growth = (r["engine_rss_peak"] - r["engine_rss_start"]) / _MIB
            engine = f"{r['engine_rss_peak'] / _MIB:>11,.0f}{growth:>+8,.0f}{r['engine_anon_peak'] / _MIB:>6,.0f}"
        print(
            f"{r['stage']:<26}{r['rows']:>10,}{r['seconds']:>8.2f}{r['rows'] / r['seconds']:>11,.0f}{cpu:>7.2f}"
            f"{r['load']:>6.1f}{r['driver_rss_peak'] / _MIB:>11,.0f}"
            f"{(r['driver_rss_peak'] - r['driver_rss_start']) / _MIB:>+8,.1f}{engine}"
            f"{r['bytes_in'] / 1e6:>7,.0f}{r['bytes_out'] / 1e6:>6,.0f}{r['disk_read_bytes'] / 1e6:>6,.0f}"
        )
    print(
        f"\ncost ~ N^k, least squares on log-log (wall, CPU: all sizes; top: wall over the two largest sizes); "
        f"flags: k > {K_LIMIT}, driver memory growing with N (> {config['memory_slack_bytes'] / _MIB:.0f} MiB "
        "over the range); rate: rows per CPU-second at the largest size"
    )
    print(f"{'stage':<26}{'k wall':>8}{'k cpu':>8}{'k top':>8}{'driver B/row':>14}{'rows/cpu-s':>12}  flags")
    for stage, fit in report["fits"].items():
        flags = [f"k > {K_LIMIT}"] if max(fit["k_wall"], fit["k_cpu"]) > K_LIMIT else []
        flags += ["DRIVER MEMORY GROWS WITH N"] if fit["driver_memory_grows"] else []
        print(
            f"{stage:<26}{fit['k_wall']:>8.2f}{fit['k_cpu']:>8.2f}{fit['k_wall_top']:>8.2f}"
            f"{fit['driver_bytes_per_row']:>14.2f}{fit['rows_per_cpu_s']:>12,.0f}  {', '.join(flags) or 'ok'}"
        )


def plot(report: dict, path: Path) -> None:
    """Log-log figure from the JSON report: wall seconds (left) and CPU seconds (right) per stage against rows,
    each stage labelled with its fitted k, and a line of slope 1 for reference."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 5.5), dpi=110)
    panels = figure.subplots(1, 2)
    n = np.array(sorted({r["rows"] for r in report["results"]}), dtype=np.float64)
    for axes, (label, cost, k) in zip(
        panels,
        [
            ("wall seconds", lambda r: r["seconds"], "k_wall"),
            ("CPU seconds (driver + engine)", lambda r: r["driver_cpu_s"] + (r["engine_cpu_s"] or 0.0), "k_cpu"),
        ],
        strict=True,
    ):
        for stage, fit in report["fits"].items():
            points = sorted((r["rows"], cost(r)) for r in report["results"] if r["stage"] == stage)
            axes.plot(*zip(*points, strict=True), marker="o", label=f"{stage} (k = {fit[k]:.2f})")
        top = max(cost(r) for r in report["results"] if r["rows"] == n[0])
        axes.plot(n, top * n / n[0], color="grey", linestyle="--", linewidth=1, label="slope 1 (linear)")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("metadata rows (each with a 768-d fp16 embedding)")
        axes.set_ylabel(label)
        axes.grid(True, which="both", linewidth=0.3)
        axes.legend(fontsize=7)
    info, config = report["machine"], report["config"]
    figure.suptitle(
        f"laion-spark stages on {config['engine']}, {info['cores']} cores ({info['cpu']}), "
        f"best of {config['repeat']}, load {info['load_before'][0]:.1f} before / {info['load_after'][0]:.1f} after"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def sizes_for(max_rows: int, count: int, part_rows: int) -> list[int]:
    """``count`` sizes halving down from ``max_rows``, each a multiple of ``part_rows`` (at least one part)."""
    if max_rows < part_rows or max_rows % part_rows:
        raise SystemExit(f"--max-rows {max_rows:,} must be a positive multiple of --part-rows {part_rows:,}")
    parts = max_rows // part_rows
    found = sorted({max(parts >> i, 1) * part_rows for i in range(count)})
    if len(found) < 3:
        raise SystemExit(f"--max-rows {max_rows:,} / --part-rows {part_rows:,} gives sizes {found}: need 3 or more")
    return found


def main(argv: list[str] | None = None) -> None:
    """Generate or reuse the data, run every stage at every size, print, save the JSON and draw the figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-rows", type=int, default=4_000_000, help="largest size (default 4,000,000)")
    parser.add_argument("--sizes", type=int, default=4, help="sizes, halving down from --max-rows (default 4)")
    parser.add_argument("--part-rows", type=int, default=PART_ROWS, help="rows per generated part and shard")
    parser.add_argument("--kv-range-rows", type=int, help="build-kv max_rows_per_range (default --part-rows)")
    parser.add_argument("--engine", choices=ENGINES, default="sail-server")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every size; the fastest of each stage is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path("bench-out/scale-data"), help="generated inputs (kept)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/scale"), help="lakes, scale.json, scale.png")
    parser.add_argument("--keep", action="store_true", help="keep each size's lake and KV files")
    parser.add_argument("--figure", type=Path, help="where to draw the figure (default <out>/scale.png)")
    parser.add_argument("--from-json", type=Path, help="reprint and redraw a saved scale.json; run nothing")
    args = parser.parse_args(argv)
    figure = args.figure or args.out / "scale.png"
    args.kv_range_rows = args.kv_range_rows or args.part_rows

    if args.from_json:
        report = json.loads(args.from_json.read_text())
        print_report(report)
        plot(report, figure)
        return

    sizes = sizes_for(args.max_rows, args.sizes, args.part_rows)
    info = machine()
    started = time.perf_counter()
    print(f"data: {sizes[-1] // args.part_rows} parts of {args.part_rows:,} rows under {args.data}", flush=True)
    head_file = generate_parts(args.data, sizes[-1] // args.part_rows, args.part_rows, args.seed)
    views = {rows: size_view(args.data, rows, args.part_rows) for rows in [args.part_rows, *sizes]}
    print(f"data ready in {time.perf_counter() - started:.1f} s; sizes {', '.join(f'{n:,}' for n in sizes)}")

    best: dict[tuple[str, int], Measurement] = {}
    with engine_session(args.engine) as lake:
        warm = time.perf_counter()
        run_size(lake, views[args.part_rows], args.out / "warm-up", head_file, args, args.part_rows)
        shutil.rmtree(args.out / "warm-up")
        print(f"warm-up over {args.part_rows:,} rows: {time.perf_counter() - warm:.1f} s (not reported)", flush=True)
        for attempt in range(args.repeat):  # sizes interleaved, best of N per stage: robust to a busy machine
            for rows in sizes:
                run = args.out / f"rows-{rows}"
                measured = run_size(lake, views[rows], run, head_file, args, rows)
                for m in measured:
                    if (m.stage, rows) not in best or m.seconds < best[m.stage, rows].seconds:
                        best[m.stage, rows] = m
                total = sum(m.seconds for m in measured)
                print(f"  run {attempt + 1}, {rows:,} rows: {total:.1f} s over all stages", flush=True)
                if not args.keep:
                    shutil.rmtree(run)
    info["load_after"] = os.getloadavg()
    dicts = [asdict(m) for m in best.values()]
    report = {
        "machine": info,
        "config": {
            "engine": args.engine,
            "sizes": sizes,
            "part_rows": args.part_rows,
            "kv_range_rows": args.kv_range_rows,
            "seed": args.seed,
            "repeat": args.repeat,
            "memory_slack_bytes": MEMORY_SLACK,
        },
        "results": dicts,
        "fits": fits(dicts),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(report, indent=1) + "\n")
    print_report(report)
    plot(report, figure)
    print(f"\nresults: {args.out / 'scale.json'}; figure: {figure}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

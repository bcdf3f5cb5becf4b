"""Every GPU check of the CLIP stage in one run, each section in its own process with its own time budget.

    python -m bench.gpu_check --out OUT/gpu_check.json [--device auto|cpu|cuda:N] [--small]
                              [--sections throughput,oom] [--deadline-s 455]

(On the GPU machine ``bench/gpu_check.sh`` installs the carried wheels and runs this.) Sections, in order:

============  ======================================================================================
environment   versions, the GPU (name, memory, driver), the project's device choice; always first
throughput    ``bench/clip_gpu.py``: ViT-L/14 fp16 from tensors (batch sweep) and end to end from JPEG
              tars (nvJPEG and PIL threads), ViT-B/32 captions (dynamic vs 77-token padding), shares
              of the GPU's peak
correctness   ``bench/gpu_correctness.py``: 64 images through the GPU path (fp16, nvJPEG) and the CPU
              path (fp32, PIL), with the bounds it states
oom           ``bench/gpu_oom.py``: a batch that does not fit, halved until it does, every row once
concurrency   ``bench/gpu_concurrency.py``: tasks on threads share one model load; 1, 2 and 4 tasks
sail          ``bench/gpu_sail.py``: ``score-images`` through Sail into Delta beside the plain loop
============  ======================================================================================

A section that fails, crashes or runs out of its budget is recorded as such (its error, the end of its
traceback) and the next one runs. The JSON (:data:`SCHEMA`) is rewritten after every section, so a run
cut short still leaves what it measured. ``--device cpu --small`` is the dry run for a machine without
CUDA: the same code paths with the tiny model and a few hundred items (no CUDA-specific figure means
anything there). Exit status: 0 when every section ran (or was skipped) and every check passed, 1
otherwise, 2 with one ``error:`` line for bad input or for no CUDA device without ``--device cpu``.
Throughput goals missed are findings, reported in ``summary``, not failures.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .clip_gpu import GOAL_END_TO_END, GOAL_FROM_TENSORS
from .gpu_common import Clock, Context

SCHEMA = "laion-spark/gpu-check/1"
#: Section -> (function, budget in seconds on a GPU, budget in the dry run).
SECTIONS = {
    "environment": ("bench.gpu_check:environment", 40, 90),
    "throughput": ("bench.clip_gpu:section", 120, 240),
    "correctness": ("bench.gpu_correctness:check", 80, 150),
    "oom": ("bench.gpu_oom:check", 60, 90),
    "concurrency": ("bench.gpu_concurrency:check", 70, 150),
    "sail": ("bench.gpu_sail:check", 80, 180),
}
STATUSES = ("ok", "skipped", "failed", "crashed", "timeout")
#: Seconds a section's process gets past its budget to write its result before it is killed.
GRACE_S = 10
#: A section is not started with less time left than this.
MIN_BUDGET_S = 15
VERSIONS = (
    "torch", "torchvision", "open_clip_torch", "timm", "numpy", "pillow", "pyarrow", "pandas", "numba",
    "ftfy", "mmh3", "pysail", "pyspark", "pyspark-client", "protobuf", "grpcio", "laion-spark",
)  # fmt: skip


def _version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _nvidia_smi() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def environment(ctx: Context) -> dict:
    """Versions, the GPU, the carried wheels' manifest (``$GPU_WHEELS_MANIFEST``) and the project's device
    choice: by itself, and as a Spark task would see it (``CUDA_VISIBLE_DEVICES``, a ``gpu`` resource)."""
    import platform
    from types import SimpleNamespace

    import torch

    import laion_spark
    from laion_spark.clip.device import precision_for, select_device

    chosen = select_device()
    info: dict = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "versions": {name: _version(name) for name in VERSIONS},
        "laion_spark_file": laion_spark.__file__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "device": chosen,
        "precision": precision_for(chosen),
        "device_choice": {
            "CUDA_VISIBLE_DEVICES=0": select_device(environ={"CUDA_VISIBLE_DEVICES": "0"}, resources={}),
            "task gpu address 0": select_device(environ={}, resources={"gpu": SimpleNamespace(addresses=["0"])}),
            "task gpu address 7": select_device(environ={}, resources={"gpu": SimpleNamespace(addresses=["7"])}),
            "nothing assigned": select_device(environ={}, resources={}),
        },
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "count": torch.cuda.device_count(),
            "nvidia_smi": _nvidia_smi(),
        }
    manifest = os.environ.get("GPU_WHEELS_MANIFEST")
    if manifest and Path(manifest).is_file():
        info["wheels_manifest"] = json.loads(Path(manifest).read_text())
    return info


def _jsonable(value: object) -> object:
    """numpy scalars and arrays, paths and sets as JSON values (``json.dumps(default=...)``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (Path, set, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    return repr(value)


def write_json(path: Path, value: dict) -> None:
    """Write ``value`` to ``path`` atomically (a partial file never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(value, indent=1, default=_jsonable, allow_nan=True) + "\n")
    partial.replace(path)


def run_section(name: str, ctx: Context, result_path: Path) -> int:
    """Inside a section's process: run it, write its record (``status``, ``result`` or ``error``), return 0."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    module, _, function = SECTIONS[name][0].partition(":")
    started = time.perf_counter()
    try:
        value = getattr(importlib.import_module(module), function)(ctx)
        record: dict = {"status": "skipped" if "skipped" in value else "ok", "result": value}
    except BaseException as err:  # noqa: BLE001 - the section's failure is its result
        lines = traceback.format_exc().strip().splitlines()
        record = {
            "status": "failed",
            "error": f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}",
            "traceback": lines[-25:],
        }
    record["seconds"] = round(time.perf_counter() - started, 2)
    write_json(result_path, record)
    return 0


def spawn_section(name: str, device: str, small: bool, work: Path, budget_s: float) -> dict:
    """Run section ``name`` in a fresh interpreter bounded by ``budget_s`` (+ :data:`GRACE_S`); its record."""
    result = work / f"{name}.result.json"
    result.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "bench.gpu_check", "--section", name, "--result", str(result),
        "--budget-s", f"{budget_s:.0f}", "--device", device, "--work", str(work / name),
    ] + (["--small"] if small else [])  # fmt: skip
    print(f"== {name} (budget {budget_s:.0f} s) ==", flush=True)
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, timeout=budget_s + GRACE_S, check=False)
    except subprocess.TimeoutExpired:
        record = {"status": "timeout", "error": f"killed after {budget_s + GRACE_S:.0f} s (budget {budget_s:.0f} s)"}
    else:
        if result.is_file():
            record = json.loads(result.read_text())
        else:
            record = {"status": "crashed", "error": f"the section's process exited {proc.returncode} without a result"}
    record["wall_s"] = round(time.perf_counter() - started, 2)
    record["budget_s"] = round(budget_s, 1)
    print(
        f"== {name}: {record['status']} in {record['wall_s']} s"
        + (f": {record['error']}" if "error" in record else ""),
        flush=True,
    )
    return record


def _get(report: dict, *path: str) -> object:
    value: object = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def summarise(report: dict) -> dict:
    """The figures beside their goals and every check's verdict; ``ok`` when every section ran (or was
    skipped) and no check failed."""
    sections = report["sections"]
    dry = report["mode"] != "gpu"
    goals = {}
    for key, path, goal in (
        (
            "vit_l14_from_tensors_images_per_s",
            ("throughput", "result", "from_tensors", "images_per_s"),
            GOAL_FROM_TENSORS,
        ),
        (
            "vit_l14_end_to_end_images_per_s",
            ("throughput", "result", "end_to_end", "gpu_decode", "images_per_s"),
            GOAL_END_TO_END,
        ),
    ):
        value = _get(sections, *path)
        goals[key] = {"value": value, "goal": goal, "met": None if dry or value is None else value >= goal}
    checks = {name: _get(sections, name, "result", "passed") for name in ("correctness", "oom", "concurrency", "sail")}
    ran = all(s.get("status") in ("ok", "skipped") for s in sections.values())
    return {
        "goals": goals,
        "checks": checks,
        "sections_ran": ran,
        "ok": ran and all(v is not False for v in checks.values()),
        "note": "CPU dry run: the code paths ran; no figure is a GPU figure" if dry else None,
    }


def problems(report: dict) -> list[str]:
    """What makes ``report`` not a :data:`SCHEMA` report (empty when it is one)."""
    found = []
    for key, kind in (("schema", str), ("mode", str), ("device", str), ("started", str), ("sections", dict)):
        if not isinstance(report.get(key), kind):
            found.append(f"{key}: missing or not {kind.__name__}")
    if report.get("schema") != SCHEMA:
        found.append(f"schema: {report.get('schema')!r} is not {SCHEMA!r}")
    for name, record in (report.get("sections") or {}).items():
        if name not in SECTIONS:
            found.append(f"sections.{name}: unknown section")
        if not isinstance(record, dict) or record.get("status") not in STATUSES:
            found.append(f"sections.{name}.status: not one of {STATUSES}")
            continue
        if record["status"] in ("ok", "skipped") and not isinstance(record.get("result"), dict):
            found.append(f"sections.{name}.result: missing for status {record['status']}")
        if record["status"] not in ("ok", "skipped") and not isinstance(record.get("error"), str):
            found.append(f"sections.{name}.error: missing for status {record['status']}")
        for number in ("wall_s", "budget_s"):
            if not isinstance(record.get(number), (int, float)):
                found.append(f"sections.{name}.{number}: missing or not a number")
    if "finished" in report and not isinstance(report.get("summary"), dict):
        found.append("summary: missing in a finished report")
    return found


def _print_summary(report: dict) -> None:
    summary = report["summary"]
    print(f"\n== gpu_check {report['mode']} on {report['device']}: {'ok' if summary['ok'] else 'NOT ok'}")
    for name, record in report["sections"].items():
        print(
            f"  {name:<12} {record['status']:<8} {record['wall_s']:>7.1f} s"
            + (f"  {record['error']}" if "error" in record else "")
        )
    for name, goal in summary["goals"].items():
        met = {True: "met", False: "NOT met", None: "n/a"}[goal["met"]]
        print(f"  {name}: {goal['value']} (goal {goal['goal']:,}: {met})")
    print(f"  checks: {summary['checks']}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring); ``--section`` and ``--result`` are the child's."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/gpu-check/gpu_check.json"), help="the JSON report")
    parser.add_argument("--device", default="auto", help="auto (the project's choice; refuses a CPU), cpu, or cuda:N")
    parser.add_argument("--small", action="store_true", help="the dry run's sizes: the tiny model, a few hundred items")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated sections (environment always runs)"
    )
    parser.add_argument(
        "--deadline-s", type=float, default=455.0, help="seconds for all sections together (default 455)"
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--section", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--budget-s", type=float, default=60.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the sections (or, with ``--section``, one of them in this process); see the module docstring."""
    args = parse(argv)
    if args.section:
        if args.section not in SECTIONS or args.result is None or args.work is None:
            print(f"error: --section must be one of {', '.join(SECTIONS)}, with --result and --work", file=sys.stderr)
            return 2
        args.work.mkdir(parents=True, exist_ok=True)
        return run_section(args.section, Context(args.device, args.small, args.work, Clock(args.budget_s)), args.result)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        print(f"error: unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    if args.device not in ("auto", "cpu") and not args.device.startswith("cuda:"):
        print(f"error: --device {args.device!r}: give auto, cpu or cuda:N", file=sys.stderr)
        return 2
    deadline = Clock(args.deadline_s)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    report: dict = {
        "schema": SCHEMA,
        "mode": "gpu" if args.device != "cpu" else "cpu-dry-run",
        "device": args.device,
        "small": args.small,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "deadline_s": args.deadline_s,
        "sections": {},
    }
    try:
        for name in ["environment", *[s for s in wanted if s != "environment"]]:
            cap = SECTIONS[name][2 if args.small else 1]
            budget = min(cap, deadline.left() - GRACE_S)
            if name == "environment":  # cheap, and every other section needs its device choice
                budget = max(budget, MIN_BUDGET_S)
            elif budget < MIN_BUDGET_S:
                report["sections"][name] = {
                    "status": "skipped",
                    "result": {"skipped": "no time left"},
                    "wall_s": 0.0,
                    "budget_s": 0.0,
                }
                continue
            record = spawn_section(name, report["device"], args.small, work, budget)
            report["sections"][name] = record
            if name == "environment":
                chosen = _get(record, "result", "device")
                if args.device == "auto":
                    if record["status"] != "ok":
                        write_json(args.out, report)
                        print(
                            f"error: the environment section {record['status']}: {record.get('error')}", file=sys.stderr
                        )
                        return 1
                    if not str(chosen).startswith("cuda"):
                        write_json(args.out, report)
                        print(
                            f"error: no CUDA device here (the project's device choice is {chosen!r}): run with "
                            "--device cpu --small for the dry run",
                            file=sys.stderr,
                        )
                        return 2
                    report["device"] = chosen
            write_json(args.out, report)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report["summary"] = summarise(report)
    found = problems(report)
    if found:
        report["summary"]["schema_problems"] = found
        report["summary"]["ok"] = False
    write_json(args.out, report)
    _print_summary(report)
    print(f"report: {args.out}")
    return 0 if report["summary"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Several tasks at once in one process, as Sail runs Python UDFs: one model load, and what 1, 2 and 4 tasks give.

Sail runs every partition's Python UDF in its own server process, on threads. Here threads play the
tasks, each doing what :func:`laion_spark.clip.images.score_tar_tasks` does: ask the process-wide cache
for the model with no device named (so each task makes the per-task device choice itself,
:func:`~laion_spark.clip.device.select_device`) and embed its tars with :func:`embed_tar`.

* ``sharing``: 4 tasks released together ask for the model at once; the cache must build it once
  (:func:`~laion_spark.clip.model.model_loads` == 1) and hand every task the same object.
* ``tars``: 1, 2 and 4 concurrent tasks, each embedding its own tars end to end (its own decoder
  threads; nvJPEG on a GPU); images/s of all tasks together. Every tar's embeddings must equal those of a
  sequential run first made of the same tars (cosine >= 0.999): threads sharing one model must not mix
  their rows.
* ``tensors``: 1, 2 and 4 concurrent tasks pushing preprocessed pixels already on the device through the
  shared model (the GPU alone: concurrency cannot add arithmetic, only fill gaps).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .gpu_common import Context, rate, sync

if TYPE_CHECKING:
    from laion_spark.clip import ClipModel

TASK_COUNTS = (1, 2, 4)


def run_tasks(count: int, work: Callable[[int], int]) -> tuple[float, int, list[BaseException]]:
    """Run ``work(task)`` for ``count`` tasks on threads released together; (seconds, items, errors)."""
    barrier = threading.Barrier(count)
    done = [0] * count
    errors: list[BaseException] = []

    def task(index: int) -> None:
        barrier.wait()
        try:
            done[index] = work(index)
        except BaseException as err:  # noqa: BLE001 - reported, not lost in a thread
            errors.append(err)

    threads = [threading.Thread(target=task, args=(i,), name=f"task-{i}") for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, sum(done), errors


def shared_load(spec_text: str, tasks: int = 4) -> dict:
    """``tasks`` threads ask the cache for ``spec_text`` at once (no device named); what they got."""
    from laion_spark.clip import ModelSpec, load_model, model_loads

    spec = ModelSpec.parse(spec_text)
    slots: list[ClipModel | None] = [None] * tasks

    def ask(index: int) -> int:
        slots[index] = load_model(spec)
        return 1

    seconds, _, errors = run_tasks(tasks, ask)
    if errors:
        raise errors[0]
    got = [m for m in slots if m is not None]
    devices = sorted({m.device for m in got})
    loads = {d: model_loads(spec, d, got[0].precision) for d in devices}
    same = all(m is got[0] for m in got)
    return {
        "tasks": tasks,
        "devices_chosen": devices,
        "loads": loads,
        "same_object": same,
        "seconds": round(seconds, 2),
        "passed": same and list(loads.values()) == [1],
    }


def check(ctx: Context) -> dict:
    """The section: sharing, then ``tars`` and ``tensors`` throughput of 1, 2 and 4 tasks."""
    import torch

    from laion_spark.aesthetic.heads import Head
    from laion_spark.clip import InferenceBatches, ModelSpec, load_model
    from laion_spark.clip.images import embed_tar

    from .clip_inputs import write_tars
    from .gpu_correctness import cosine_rows

    result: dict = {"model": ctx.image_model, "sharing": shared_load(ctx.image_model)}
    clip = load_model(ModelSpec.parse(ctx.image_model))
    per_task, per_tar, batch = (1, 32, 16) if ctx.small else (2, 256, 256)
    tars = write_tars(ctx.work / "tars", per_task * max(TASK_COUNTS), rendered=False, per_tar=per_tar)
    head = Head("random", clip.spec.name, np.random.default_rng(0).normal(size=clip.image_dim).astype(np.float32), 5.0)

    def embed(path: Path) -> np.ndarray:
        return embed_tar(path, load_model(clip.spec), head, batch_size=batch).embeddings

    reference = {path: embed(path) for path in tars}  # sequential; also the warm-up
    tars_rates: dict[str, float | None] = {}
    worst = 1.0
    for count in TASK_COUNTS:
        if ctx.clock.left() < 10:
            tars_rates[str(count)] = None
            continue
        outputs: dict[Path, np.ndarray] = {}

        def work(task: int, outputs: dict[Path, np.ndarray] = outputs) -> int:
            rows = 0
            for path in tars[task * per_task : (task + 1) * per_task]:
                outputs[path] = embed(path)
                rows += len(outputs[path])
            return rows

        sync(ctx.device)
        seconds, rows, errors = run_tasks(count, work)
        sync(ctx.device)
        if errors:
            raise errors[0]
        tars_rates[str(count)] = rate(rows, seconds)
        worst = min(worst, *(float(cosine_rows(reference[p], e).min()) for p, e in outputs.items()))
    result["tars"] = {
        "images_per_task": per_task * per_tar,
        "images_per_s": tars_rates,
        "min_cosine_vs_sequential": round(worst, 6),
    }

    side = clip.preprocess_cfg["size"]
    side = side if isinstance(side, int) else side[0]
    images = 64 if ctx.small else 2048
    pixels = torch.randn(batch, 3, side, side, device=clip.device, dtype=clip.dtype)
    tensor_rates: dict[str, float | None] = {}
    for count in TASK_COUNTS:
        if ctx.clock.left() < 5:
            tensor_rates[str(count)] = None
            continue

        def push(task: int) -> int:
            batches = InferenceBatches(batch, "images")
            for _ in range(images // batch):
                batches.run(batch, lambda a, b: clip.encode_images(pixels[a:b]))
            return images // batch * batch

        sync(ctx.device)
        seconds, done, errors = run_tasks(count, push)
        sync(ctx.device)
        if errors:
            raise errors[0]
        tensor_rates[str(count)] = rate(done, seconds)
    result["tensors"] = {"images_per_task": images, "images_per_s": tensor_rates}
    result["passed"] = bool(result["sharing"]["passed"] and worst >= 0.999)
    print(
        f"concurrent tasks: {result['sharing']['loads']} model load(s) for {result['sharing']['tasks']} tasks; images/s "
        f"by tasks, tars {tars_rates}, tensors {tensor_rates}; min cosine vs sequential {worst:.6f}"
    )
    return result

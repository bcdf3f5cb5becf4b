"""Benchmark on one CUDA GPU, without Spark: the project's CLIP code at fp16, against the GPU's peak FLOP/s.

    .venv/bin/python -m bench.clip_gpu [--images 8192] [--batch 256] [--tars 16] [--captions 32768]
                                       [--text-batch 1024] [--peak-tflops N] [--out bench-out/clip-gpu]

* ``ViT-L/14 from tensors``: random fp16 pixels already on the GPU through
  :class:`~laion_spark.clip.batching.InferenceBatches` and :meth:`ClipModel.encode_images` (normalised
  embeddings copied back to the host, as a task does), at ``--batch`` and at the sweep's other sizes;
* ``ViT-L/14 end to end``: :func:`laion_spark.clip.images.embed_tar` over ``--tars`` tars of JPEG
  photographs (crops of matplotlib's portrait at 224..512 px): tar reading, the GPU JPEG decoder
  (nvJPEG) with the model's preprocessing, inference, head scores, LAION hashes; again with
  ``gpu_decode=False`` (PIL threads); with the read / decode / infer seconds that say what bounds it;
* ``ViT-B/32 captions``: :func:`laion_spark.clip.encode_captions` over LAION-like captions, with dynamic
  padding and with 77-token padding.

Random weights (``:random``): speed only. FLOPs are counted with ``torch.utils.flop_counter`` on one
batch (2 per multiply-add); the share is of the datasheet dense fp16 tensor peak for the GPU's name
(``--peak-tflops`` overrides) and of a measured 8192^3 fp16 matmul. Goals on one H100/H200: 2,500
ViT-L/14 images/s from tensors, 1,000 end to end. Exits with status 2 and one line when there is no
CUDA device. :func:`measure` returns the same figures as a dict (``bench/gpu_check.py`` records them, and
runs them on the CPU with the tiny model in its dry run).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .gpu_common import FULL_IMAGE_MODEL, FULL_TEXT_MODEL, SMALL_MODEL, Clock, Context, rate, sync, timed

if TYPE_CHECKING:
    import torch

    from laion_spark.aesthetic.heads import Head
    from laion_spark.clip import ClipModel

#: Datasheet dense (no sparsity) fp16 tensor-core TFLOP/s, by a substring of ``torch.cuda.get_device_name``.
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
    "V100": 125.0,
    "RTX 4090": 165.0,
}
#: The goals on one H100/H200, images/s of ViT-L/14.
GOAL_FROM_TENSORS = 2500
GOAL_END_TO_END = 1000


@dataclass(frozen=True)
class Sizes:
    """How much each measurement does."""

    image_model: str = FULL_IMAGE_MODEL
    text_model: str = FULL_TEXT_MODEL
    images: int = 8192
    batch: int = 256
    sweep: tuple[int, ...] = (128, 512, 1024)
    tars: int = 16
    per_tar: int = 256
    captions: int = 32768
    text_batch: int = 1024
    matmul: int = 8192


#: The CPU dry run's sizes: the tiny model, a few hundred items.
SMALL = Sizes(SMALL_MODEL, SMALL_MODEL, 256, 32, (64,), 2, 32, 256, 64, 512)


class NoCudaError(RuntimeError):
    """The benchmark needs a CUDA device."""


def peak_tflops(device_name: str) -> float | None:
    """Datasheet fp16 peak of the first :data:`PEAK_TFLOPS` key found in ``device_name`` (longest first)."""
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key in device_name:
            return PEAK_TFLOPS[key]
    return None


def require_cuda() -> str:
    """The CUDA device this process will use (the project's own choice); :class:`NoCudaError` without one."""
    import torch

    from laion_spark.clip.device import select_device

    if not torch.cuda.is_available():
        raise NoCudaError(
            "bench/clip_gpu.py needs a CUDA GPU: torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); run bench/clip.py on a CPU"
        )
    return select_device()


def counted_flops(run: Callable[[], object]) -> float:
    """FLOPs (2 per multiply-add) of the torch operations ``run`` performs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        run()
    return float(counter.get_total_flops())


def matmul_tflops(device: str, size: int = 8192, repeat: int = 20) -> float:
    """Measured matmul TFLOP/s (fp16 on CUDA, fp32 on the CPU): the ceiling a large GEMM reaches here."""
    import torch

    dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def products() -> int:
        for _ in range(repeat):
            a @ b
        return repeat

    products()  # warm-up
    seconds, _ = timed(products, device)
    return 2 * size**3 * repeat / seconds / 1e12


def shares(flops_per_s: float, peak: float | None, measured: float) -> dict[str, float | None]:
    """``flops_per_s`` as a share of the datasheet peak (None when unknown) and of the measured matmul."""
    return {
        "share_of_peak": round(flops_per_s / 1e12 / peak, 4) if peak else None,
        "share_of_matmul": round(flops_per_s / 1e12 / measured, 4) if measured else None,
    }


def _from_tensors(clip: ClipModel, pixels: torch.Tensor, images: int, batch: int, device: str) -> tuple[float, int]:
    """(seconds, images) of ``images`` preprocessed images through the model in forwards of ``batch``."""
    from laion_spark.clip import InferenceBatches

    batches = InferenceBatches(batch, "images")

    def run() -> int:
        done = 0
        while done < images:
            n = min(batch, images - done)
            batches.run(n, lambda a, b: clip.encode_images(pixels[a:b]))
            done += n
        return done

    batches.run(batch, lambda a, b: clip.encode_images(pixels[a:b]))  # warm-up at this shape
    return timed(run, device)


def _end_to_end(tars: list[Path], clip: ClipModel, head: Head, batch: int, gpu_decode: bool, device: str) -> dict:
    """images/s of :func:`embed_tar` over ``tars`` (after one warm-up tar), with its step seconds."""
    from laion_spark.clip.images import embed_tar

    embed_tar(tars[0], clip, head, batch_size=batch, gpu_decode=gpu_decode)  # warm-up
    steps = {"read": 0.0, "decode": 0.0, "infer": 0.0}

    def run() -> int:
        rows = 0
        for tar in tars:
            result = embed_tar(tar, clip, head, batch_size=batch, gpu_decode=gpu_decode)
            rows += int(result.embedded.sum())
            for step in steps:
                steps[step] += result.progress.seconds[step]
        return rows

    seconds, rows = timed(run, device)
    bound = max(steps, key=lambda s: steps[s])
    return {
        "decoder": "nvJPEG" if gpu_decode and device.startswith("cuda") else "PIL threads",
        "images": rows,
        "seconds": round(seconds, 3),
        "images_per_s": rate(rows, seconds),
        "step_seconds": {k: round(v, 3) for k, v in steps.items()},
        "largest_step": bound,
    }


def measure(ctx: Context, sizes: Sizes, peak: float | None = None) -> dict:
    """Every measurement of this module on ``ctx.device`` at ``sizes``, as a dict (see the module docstring).

    A part that the clock leaves no time for is recorded as ``{"skipped": "out of time"}``.
    """
    import torch

    from laion_spark.aesthetic.heads import Head
    from laion_spark.clip import ModelSpec, load_model

    from .clip_inputs import write_tars

    device = ctx.device
    name = torch.cuda.get_device_name(device) if ctx.on_cuda else "cpu"
    peak = peak or (peak_tflops(name) if ctx.on_cuda else None)
    measured = matmul_tflops(device, sizes.matmul, repeat=20 if ctx.on_cuda else 3)
    report: dict = {"device": device, "device_name": name, "peak_tflops": peak, "matmul_tflops": round(measured, 1)}

    started = time.perf_counter()
    vit = load_model(ModelSpec.parse(sizes.image_model), device)
    report["image_model"] = {
        "spec": sizes.image_model,
        "precision": vit.precision,
        "load_s": round(time.perf_counter() - started, 2),
    }
    size = vit.preprocess_cfg.get("size", 224)
    side = size if isinstance(size, int) else size[0]
    largest = max(sizes.batch, *sizes.sweep)
    pixels = torch.randn(largest, 3, side, side, device=device, dtype=vit.dtype)
    per_image = counted_flops(lambda: vit.model.encode_image(pixels[:1]))
    report["image_model"]["gflop_per_image"] = round(per_image / 1e9, 4)

    tensors = []
    for batch in (sizes.batch, *sizes.sweep):
        if ctx.clock.left() < 10:
            tensors.append({"batch": batch, "skipped": "out of time"})
            continue
        seconds, images = _from_tensors(vit, pixels, sizes.images, batch, device)
        tensors.append(
            {
                "batch": batch,
                "images": images,
                "seconds": round(seconds, 3),
                "images_per_s": rate(images, seconds),
                **shares(images / seconds * per_image, peak, measured),
            }  # fmt: skip
        )
    report["from_tensors"] = tensors[0]
    report["batch_sweep"] = tensors
    pixels = None  # free the GPU memory before the tars

    tars = write_tars(ctx.work / "tars", sizes.tars, rendered=False, per_tar=sizes.per_tar)
    head = Head(
        "random", sizes.image_model, np.random.default_rng(0).normal(size=vit.image_dim).astype(np.float32), 5.0
    )
    report["end_to_end"] = {}
    for key, gpu_decode in (("gpu_decode", True), ("pil_threads", False)):
        if ctx.clock.left() < 15:
            report["end_to_end"][key] = {"skipped": "out of time"}
            continue
        report["end_to_end"][key] = _end_to_end(tars, vit, head, sizes.batch, gpu_decode, device)

    report["captions"] = _captions(ctx, sizes, peak, measured)
    return report


def _captions(ctx: Context, sizes: Sizes, peak: float | None, measured: float) -> dict:
    """captions/s of the text model with dynamic and with 77-token padding, and the speed-up."""
    from laion_spark.clip import ModelSpec, encode_captions, load_model

    from .clip_inputs import laion_like_captions

    if ctx.clock.left() < 15:
        return {"skipped": "out of time"}
    text = load_model(ModelSpec.parse(sizes.text_model), ctx.device)
    captions = laion_like_captions(sizes.captions)
    sample = captions[: sizes.text_batch]
    result: dict = {"model": sizes.text_model, "captions": len(captions), "batch": sizes.text_batch}
    for padding in ("dynamic", "full"):

        def encode(texts: list[str] = captions, p: str = padding) -> int:
            return len(encode_captions(text, texts, mode="pooled", batch_size=sizes.text_batch, padding=p)[0])

        per_caption = counted_flops(lambda p=padding: encode(sample, p)) / len(sample)
        encode(sample)
        seconds, count = timed(encode, ctx.device)
        result[padding] = {
            "captions_per_s": rate(count, seconds),
            "seconds": round(seconds, 3),
            "gflop_per_caption": round(per_caption / 1e9, 3),
            **shares(count / seconds * per_caption, peak, measured),
        }
    result["dynamic_speedup"] = round(
        result["dynamic"]["captions_per_s"] / max(result["full"]["captions_per_s"], 1e-9), 2
    )
    return result


def section(ctx: Context) -> dict:
    """``bench/gpu_check.py``'s throughput section: :func:`measure` at the full sizes, or :data:`SMALL`."""
    report = measure(ctx, SMALL if ctx.small else Sizes())
    print_report(report)
    return report


def _share_text(figures: dict) -> str:
    parts = [f"{figures['share_of_peak']:.0%} of peak"] if figures.get("share_of_peak") is not None else []
    return ", ".join([*parts, f"{figures['share_of_matmul']:.0%} of the measured matmul"])


def print_report(report: dict) -> None:
    """One line per measurement of a :func:`measure` report."""
    image = f"{report['image_model']['spec']} {report['image_model']['precision']}"
    print(
        f"device: {report['device_name']} ({report['device']}); datasheet fp16 peak {report['peak_tflops'] or 'unknown'} "
        f"TFLOP/s, measured matmul {report['matmul_tflops']:.3g}"
    )
    for row in report["batch_sweep"]:
        if "skipped" not in row:
            print(
                f"{image} from tensors, batch {row['batch']}: {row['images_per_s']:,.0f} images/s "
                f"({report['image_model']['gflop_per_image']:.3g} GFLOP/image, {_share_text(row)}); "
                f"goal for ViT-L/14 on one H200: {GOAL_FROM_TENSORS:,}"
            )
    for row in report["end_to_end"].values():
        if "skipped" not in row:
            print(
                f"{image} end to end from JPEG tars ({row['decoder']}): {row['images_per_s']:,.0f} images/s "
                f"(largest step: {row['largest_step']}); goal for ViT-L/14 on one H200: {GOAL_END_TO_END:,}"
            )
    captions = report["captions"]
    for padding in ("dynamic", "full"):
        row = captions.get(padding)
        if row:
            print(
                f"{captions['model']} captions, {padding} padding: {row['captions_per_s']:,.0f} captions/s "
                f"({row['gflop_per_caption']:.3g} GFLOP/caption, {_share_text(row)})"
            )


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print one line each; 2 when there is no CUDA device."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8192, help="images from tensors (default 8192)")
    parser.add_argument("--batch", type=int, default=256, help="images per forward (default 256)")
    parser.add_argument("--tars", type=int, default=16, help="tars of 256 JPEGs, end to end (default 16)")
    parser.add_argument("--captions", type=int, default=32768, help="captions (default 32768)")
    parser.add_argument("--text-batch", type=int, default=1024, help="captions per forward (default 1024)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's fp16 peak, TFLOP/s")
    parser.add_argument("--out", type=Path, default=Path("bench-out/clip-gpu"), help="input folder")
    args = parser.parse_args(argv)
    try:
        device = require_cuda()
    except NoCudaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sizes = Sizes(
        images=args.images, batch=args.batch, tars=args.tars, captions=args.captions, text_batch=args.text_batch
    )
    ctx = Context(device, small=False, work=args.out, clock=Clock(float("inf")))
    print_report(measure(ctx, sizes, args.peak_tflops))
    sync(device)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark on one CUDA GPU, without Spark: the project's CLIP code at fp16, against the GPU's peak FLOP/s.

    .venv/bin/python -m bench.clip_gpu [--images 8192] [--batch 256] [--tars 16] [--captions 32768]
                                       [--text-batch 1024] [--peak-tflops N] [--out bench-out/clip-gpu]

* ``ViT-L/14 from tensors``: random fp16 pixels already on the GPU through
  :class:`~laion_spark.clip.batching.InferenceBatches` and :meth:`ClipModel.encode_images` (normalised
  embeddings copied back to the host, as a task does);
* ``ViT-L/14 end to end``: :func:`laion_spark.clip.images.embed_tar` over ``--tars`` tars of JPEG
  photographs (crops of matplotlib's portrait at 224..512 px): tar reading, the GPU JPEG decoder
  (nvJPEG) with the model's preprocessing, inference, head scores, LAION hashes; again with
  ``gpu_decode=False`` (PIL threads);
* ``ViT-B/32 captions``: :func:`laion_spark.clip.encode_captions` over LAION-like captions, with dynamic
  padding and with 77-token padding.

Random weights (``:random``): speed only. FLOPs are counted with ``torch.utils.flop_counter`` on one
batch (2 per multiply-add); the share is of the datasheet dense fp16 tensor peak for the GPU's name
(``--peak-tflops`` overrides) and of a measured 8192^3 fp16 matmul. Goals on one H100/H200: 2,500
ViT-L/14 images/s from tensors, 1,000 end to end. Exits with status 2 and one line when there is no
CUDA device.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

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
    """Measured fp16 matmul TFLOP/s: the ceiling a large GEMM reaches on this GPU."""
    import torch

    a = torch.randn(size, size, device=device, dtype=torch.float16)
    b = torch.randn(size, size, device=device, dtype=torch.float16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(repeat):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * size**3 * repeat / (time.perf_counter() - started) / 1e12


def _rate(run: Callable[[], int], device: str) -> tuple[float, int]:
    import torch

    torch.cuda.synchronize(device)
    started = time.perf_counter()
    items = run()
    torch.cuda.synchronize(device)
    return time.perf_counter() - started, items


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

    import torch

    from laion_spark.aesthetic.heads import Head
    from laion_spark.clip import InferenceBatches, ModelSpec, encode_captions, load_model
    from laion_spark.clip.images import embed_tar

    from .clip_inputs import laion_like_captions, write_tars

    name = torch.cuda.get_device_name(device)
    peak = args.peak_tflops or peak_tflops(name)
    measured = matmul_tflops(device)
    print(f"GPU: {name} ({device}); datasheet fp16 peak {peak or 'unknown'} TFLOP/s, measured matmul {measured:.0f}")

    def share(flops_per_s: float) -> str:
        shares = [f"{flops_per_s / 1e12 / measured:.0%} of the measured matmul"]
        if peak:
            shares.insert(0, f"{flops_per_s / 1e12 / peak:.0%} of peak")
        return ", ".join(shares)

    vit_l = load_model(ModelSpec.parse("ViT-L-14:random"), device)
    pixels = torch.randn(args.batch, 3, 224, 224, device=device, dtype=vit_l.dtype)
    per_image = counted_flops(lambda: vit_l.model.encode_image(pixels[:1]))
    batches = InferenceBatches(args.batch, "images")

    def from_tensors() -> int:
        done = 0
        while done < args.images:
            n = min(args.batch, args.images - done)
            batches.run(n, lambda a, b: vit_l.encode_images(pixels[a:b]))
            done += n
        return done

    from_tensors()  # warm-up: kernels, allocator
    seconds, images = _rate(from_tensors, device)
    rate = images / seconds
    print(
        f"ViT-L/14 fp16 from tensors: {rate:,.0f} images/s (batch {batches.size}, {per_image / 1e9:.0f} GFLOP/image, "
        f"{share(rate * per_image)}); goal 2,500"
    )

    tars = write_tars(args.out / "tars", args.tars, rendered=False, per_tar=256)
    head = Head("random-l14", "ViT-L-14", np.random.default_rng(0).normal(size=768).astype(np.float32), 5.0)
    for gpu_decode in (True, False):
        embed_tar(tars[0], vit_l, head, batch_size=args.batch, gpu_decode=gpu_decode)  # warm-up
        seconds, rows = _rate(
            lambda g=gpu_decode: sum(
                embed_tar(t, vit_l, head, batch_size=args.batch, gpu_decode=g).embedded.sum() for t in tars
            ),
            device,
        )
        how = "GPU JPEG decode" if gpu_decode else "PIL threads"
        print(f"ViT-L/14 fp16 end to end from JPEG tars ({how}): {rows / seconds:,.0f} images/s; goal 1,000")

    vit_b = load_model(ModelSpec.parse("ViT-B-32:random"), device)
    captions = laion_like_captions(args.captions)
    sample = captions[: args.text_batch]
    for padding in ("dynamic", "full"):

        def encode(texts: list[str] = captions, p: str = padding) -> int:
            return len(encode_captions(vit_b, texts, mode="pooled", batch_size=args.text_batch, padding=p)[0])

        per_caption = counted_flops(lambda p=padding: encode(sample, p)) / len(sample)
        encode(sample)
        seconds, count = _rate(encode, device)
        rate = count / seconds
        print(
            f"ViT-B/32 fp16 captions, {padding} padding: {rate:,.0f} captions/s "
            f"({per_caption / 1e9:.2f} GFLOP/caption, {share(rate * per_caption)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

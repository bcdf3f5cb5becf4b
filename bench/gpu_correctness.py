"""The GPU path against the CPU path on the same images: do fp16 and nvJPEG change the embeddings or the scores?

The same JPEGs (64 different crops of the offline photographs, :func:`bench.clip_inputs.distinct_jpegs`)
go through

* the **CPU path**: PIL decode + open_clip's transform (:class:`~laion_spark.clip.decode.ThreadDecoder`),
  the model in fp32 on the CPU;
* the **GPU path**: batched JPEG decode on the device (:class:`~laion_spark.clip.decode.GpuJpegDecoder`:
  nvJPEG on CUDA) + the tensor transform, the model in fp16 on the GPU;

and, to say which step a difference comes from, a third: PIL's pixels through the GPU model (against the
CPU path it differs by the precision alone, against the GPU path by the decoder alone). Both models are the same random-initialised weights
(:data:`~laion_spark.clip.model.RANDOM_SEED`, checked parameter by parameter). :func:`embed_tar` on the
GPU model is compared with the GPU path too (the task's own route gives the same embeddings).

Bounds (all must hold; see :data:`BOUNDS`): per row, cosine(GPU, CPU) >= 0.99; every GPU row's nearest
CPU row is its own image; the worst row's error (1 - cosine) is at most a tenth of the median distance
between two different images' CPU embeddings; and with a seeded random linear head calibrated on the CPU
embeddings to LAION's scale (scores of these images: mean 5, standard deviation 1), |score difference|
<= 0.1 on every row. In the CPU dry run the "GPU path" is bf16 on the CPU with torchvision's CPU JPEG
decoder: the same code, another reduced precision.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from .gpu_common import Context

if TYPE_CHECKING:
    import torch

    from laion_spark.clip import ClipModel

#: Name -> (bound, why). Every bound must hold for ``passed``.
BOUNDS = {
    "min_cosine": (
        0.99,
        "fp16 keeps 11 significant bits: through 24 residual blocks the embedding error stays near 1e-3, and "
        "nvJPEG's IDCT and chroma upsampling differ from libjpeg-turbo by about one 8-bit level; 0.99 leaves "
        "room for both and still means ||delta|| <= 0.14 on unit vectors, far below what separates two images",
    ),
    "top1_matches": (
        1.0,
        "every image's GPU embedding must be nearest to its own CPU embedding: nearest-neighbour search "
        "(clip-retrieval, dedup) must not change",
    ),
    "error_over_spread": (
        0.1,
        "the worst row's 1 - cosine is at most a tenth of the median 1 - cosine between two different images: "
        "the error is small next to what the embedding distinguishes (random weights make absolute cosines "
        "between images unlike a trained model's, so this is judged relative to them)",
    ),
    "max_score_diff": (
        0.1,
        "with a head whose scores of these images have standard deviation 1 (LAION's aesthetic scores spread "
        "about one point), a tenth of a point: a threshold such as > 6.5 or > 8 moves only rows within 0.1 of it",
    ),
}


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, d) arrays."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def calibrated_head_weights(reference: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """(weight, bias) of a seeded random linear head scaled so that ``reference``'s scores (of its
    L2-normalised rows) have mean 5 and standard deviation 1. ValueError when they do not vary."""
    direction = np.random.default_rng(seed).normal(size=reference.shape[1])
    raw = _unit(reference) @ direction
    spread = float(raw.std())
    if not spread > 0:
        raise ValueError("the reference embeddings give every row the same score: no spread to calibrate on")
    weight = direction / spread
    return weight.astype(np.float32), float(5.0 - raw.mean() / spread)


def compare(reference: np.ndarray, test: np.ndarray, ref_scores: np.ndarray, test_scores: np.ndarray) -> dict:
    """Figures and :data:`BOUNDS` verdicts of ``test`` rows against ``reference`` rows (same images, same order).

    ``ref_scores``/``test_scores`` are a head's scores of each. Raises ValueError for mismatched shapes or
    fewer than two rows.
    """
    if reference.shape != test.shape or len(reference) < 2 or ref_scores.shape != test_scores.shape:
        raise ValueError(f"need two (N >= 2, d) arrays of one shape, got {reference.shape} and {test.shape}")
    same = cosine_rows(reference, test)
    cross = _unit(test) @ _unit(reference).T
    nearest = cross.argmax(axis=1)
    between = (_unit(reference) @ _unit(reference).T)[~np.eye(len(reference), dtype=bool)]
    spread = float(np.median(1.0 - between))
    diff = np.abs(np.asarray(test_scores, np.float64) - np.asarray(ref_scores, np.float64))
    values = {
        "min_cosine": float(same.min()),
        "top1_matches": float(np.mean(nearest == np.arange(len(reference)))),
        "error_over_spread": float((1.0 - same.min()) / spread) if spread > 0 else float("inf"),
        "max_score_diff": float(diff.max()),
    }
    checks = {}
    for name, (bound, why) in BOUNDS.items():
        higher_is_better = name in ("min_cosine", "top1_matches")
        passed = values[name] >= bound if higher_is_better else values[name] <= bound
        checks[name] = {"value": round(values[name], 6), "bound": bound, "passed": bool(passed), "why": why}
    return {
        "rows": len(reference),
        "median_cosine": round(float(np.median(same)), 6),
        "rows_cosine_at_least_0.999": int((same >= 0.999).sum()),
        "median_cosine_between_images": round(float(np.median(between)), 6),
        "median_score_diff": round(float(np.median(diff)), 6),
        "bounds": checks,
        "passed": all(c["passed"] for c in checks.values()),
    }


def pixel_difference(a: torch.Tensor, b: torch.Tensor, mean: list[float], std: list[float]) -> dict:
    """How far two preprocessed batches (normalised N x 3 x H x W) lie apart, in 8-bit levels."""
    import torch

    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    levels = ((a.float().cpu() * s + m) - (b.float().cpu() * s + m)).abs() * 255
    per_image = levels.flatten(1).mean(dim=1)
    return {
        "mean_levels": round(float(levels.mean()), 4),
        "p99_levels": round(float(torch.quantile(levels.flatten()[:: max(1, levels.numel() // 1_000_000)], 0.99)), 4),
        "max_levels": round(float(levels.max()), 2),
        "worst_image_mean_levels": round(float(per_image.max()), 4),
        "identical_images": int((per_image == 0).sum()),
    }


def weights_match(ref: ClipModel, test: ClipModel) -> dict:
    """Whether the two models' image towers hold the same weights, up to the test precision's rounding."""
    import torch

    worst = 0.0
    tensors = 0
    for a, b in zip(ref.model.visual.state_dict().values(), test.model.visual.state_dict().values(), strict=True):
        if not torch.is_floating_point(a):
            continue
        rounded = a.to(b.dtype).float()
        worst = max(worst, float((b.float().cpu() - rounded).abs().max()))
        tensors += 1
    return {"tensors": tensors, "max_abs_difference": worst, "passed": worst == 0.0}


def check(ctx: Context) -> dict:
    """The section: both paths on ``64`` images (16 in the dry run); the verdicts of :func:`compare`."""
    from laion_spark.aesthetic.heads import Head
    from laion_spark.clip import ModelSpec, load_model
    from laion_spark.clip.decode import GpuJpegDecoder, TensorPreprocess, ThreadDecoder
    from laion_spark.clip.images import embed_tar

    from .clip_inputs import distinct_jpegs, laion_like_captions, write_jpeg_tar

    count = 16 if ctx.small else 64
    precision = "fp16" if ctx.on_cuda else "bf16"
    spec = ModelSpec.parse(ctx.image_model)
    started = time.perf_counter()
    ref = load_model(spec, "cpu", "fp32")
    test = load_model(spec, ctx.device, precision)
    load_s = time.perf_counter() - started
    jpegs, sources = distinct_jpegs(count)
    tar = write_jpeg_tar(ctx.work / "photos.tar", jpegs, laion_like_captions(count, seed=3))
    size = (
        tuple(test.preprocess_cfg["size"])
        if not isinstance(test.preprocess_cfg["size"], int)
        else (test.preprocess_cfg["size"],) * 2
    )
    types = ["jpg"] * count

    pil = ThreadDecoder(ref.preprocess).submit(jpegs, types, size).result()
    device_decoder = GpuJpegDecoder(TensorPreprocess(test.preprocess_cfg), ThreadDecoder(test.preprocess), ctx.device)
    on_device = device_decoder.submit(jpegs, types, size).result()
    device_decoder.close()
    if pil.rows != list(range(count)) or on_device.rows != list(range(count)):
        raise RuntimeError(
            f"not every image decoded: PIL errors {pil.errors}, device decoder errors {on_device.errors}"
        )

    cpu_path = ref.encode_images(pil.pixels)
    gpu_path = test.encode_images(on_device.pixels)
    precision_only = test.encode_images(pil.pixels)
    task_route = embed_tar(
        tar, test, Head("plumbing", spec.name, np.ones(test.image_dim, np.float32), 0.0), batch_size=32
    )

    weight, bias = calibrated_head_weights(cpu_path)
    head = Head("calibrated-random", spec.name, weight, bias)
    cfg = test.preprocess_cfg
    result = {
        "model": spec.name,
        "images": count,
        "photographs": sorted({s.split(" ")[0] for s in sources}),
        "gpu_path": {
            "device": ctx.device,
            "precision": precision,
            "decoder": "nvJPEG" if ctx.on_cuda else "torchvision CPU JPEG",
        },
        "cpu_path": {"device": "cpu", "precision": "fp32", "decoder": "PIL"},
        "load_s": round(load_s, 2),
        "weights": weights_match(ref, test),
        "pixels_device_vs_pil": pixel_difference(on_device.pixels, pil.pixels, cfg["mean"], cfg["std"]),
        "head": {"name": head.name, "weight_norm": round(float(np.linalg.norm(weight)), 3), "bias": round(bias, 3)},
        "gpu_vs_cpu": compare(cpu_path, gpu_path, head.score(cpu_path), head.score(gpu_path)),
        "precision_only": compare(cpu_path, precision_only, head.score(cpu_path), head.score(precision_only)),
        "decode_only": compare(precision_only, gpu_path, head.score(precision_only), head.score(gpu_path)),
    }
    expected = gpu_path if ctx.on_cuda else precision_only  # embed_tar decodes with PIL off CUDA
    route = cosine_rows(expected, task_route.embeddings)
    result["embed_tar_vs_gpu_path"] = {"min_cosine": round(float(route.min()), 6), "passed": bool(route.min() >= 0.999)}
    headline = result["gpu_vs_cpu"]
    print(
        f"GPU path vs CPU path, {count} images: min cosine {headline['bounds']['min_cosine']['value']}, max |score "
        f"difference| {headline['bounds']['max_score_diff']['value']}, pixels {result['pixels_device_vs_pil']['mean_levels']} "
        f"levels apart on average; bounds {'hold' if headline['passed'] else 'DO NOT hold'}"
    )
    result["passed"] = bool(
        result["gpu_vs_cpu"]["passed"] and result["weights"]["passed"] and result["embed_tar_vs_gpu_path"]["passed"]
    )
    return result

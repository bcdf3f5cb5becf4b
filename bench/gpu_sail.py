"""``score-images`` through Sail end to end into Delta on the GPU, beside the plain open_clip loop.

The same JPEG tars (img2dataset layout, crops of matplotlib's portrait at 224..512 px) are scored

* by :func:`bench.clip.plain_image_loop`: what a user writes with open_clip (PIL image by image, batches
  on the model's device, a linear head, one ``.npy`` per tar);
* by :func:`laion_spark.clip.score_images` on the embedded Sail engine: one task per tar (nvJPEG, the
  process-wide model, fp16), three Delta tables, the parquet_npy embedding shards, the run record.

The model is built and both contenders warmed up on one tar before any timing; the Sail session start is
shown apart. The Delta table is read back through Spark: it must hold one row per image. The section is
skipped (not failed) where ``pysail`` or the Spark Connect client does not import.
"""

from __future__ import annotations

import shutil
import time

import numpy as np

from .gpu_common import Context, rate, sync


def check(ctx: Context) -> dict:
    """The section: images/s of both contenders, their ratio, the Delta row count, the model loads."""
    try:
        import pysail  # noqa: F401
        import pyspark.sql.connect  # noqa: F401
    except ImportError as err:
        return {"skipped": f"Sail cannot run here: {err}"}
    import importlib.metadata

    from laion_spark.aesthetic.heads import Head, save_linear_head
    from laion_spark.clip import IMAGE_TAGS_TABLE, ModelSpec, load_model, model_loads, score_images
    from laion_spark.clip.params import ScoreImages
    from laion_spark.engine.factory import open_session

    from .clip import plain_image_loop
    from .clip_inputs import write_tars

    spec = ModelSpec.parse(ctx.image_model)
    tar_count, per_tar, batch = (2, 32, 16) if ctx.small else (8, 256, 256)
    tars = write_tars(ctx.work / "tars" / "laion2B-en", tar_count, rendered=False, per_tar=per_tar)
    clip = load_model(spec, ctx.device)
    head = Head("random", spec.name, np.random.default_rng(0).normal(size=clip.image_dim).astype(np.float32), 5.0)
    head_file = str(save_linear_head(ctx.work / "random.pth", head.weight, head.bias))
    runs = ctx.work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    result: dict = {
        "model": spec.name,
        "device": ctx.device,
        "images": tar_count * per_tar,
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("pysail", "pyspark", "pyspark-client")
            if _installed(name)
        },
    }
    plain_image_loop(tars[:1], clip, head, runs / "plain-warm", batch)
    sync(ctx.device)
    started = time.perf_counter()
    plain_rows = plain_image_loop(tars, clip, head, runs / "plain", batch)
    sync(ctx.device)
    plain_s = time.perf_counter() - started

    started = time.perf_counter()
    with open_session("sail") as lake:
        result["session_start_s"] = round(time.perf_counter() - started, 2)
        warm = ScoreImages(
            shards=str(tars[0]), model=spec.name, head=head_file, lake=runs / "lake-warm", batch_size=batch
        )
        score_images(lake, warm)
        started = time.perf_counter()
        stage = ScoreImages(
            shards=str(tars[0].parent / "*.tar"),
            model=spec.name,
            head=head_file,
            lake=runs / "lake",
            write_embeddings=runs / "emb",
            batch_size=batch,
        )
        summary = score_images(lake, stage)
        sail_s = time.perf_counter() - started
        delta_rows = lake.spark.read.format("delta").load(str(runs / "lake" / IMAGE_TAGS_TABLE)).count()
    sail_rows = int(summary.metrics["rows_embedded"])
    result["plain_loop"] = {
        "images": plain_rows,
        "seconds": round(plain_s, 3),
        "images_per_s": rate(plain_rows, plain_s),
    }
    result["score_images_sail"] = {
        "images": sail_rows,
        "seconds": round(sail_s, 3),
        "images_per_s": rate(sail_rows, sail_s),
        "delta_rows": delta_rows,
        "model_loads": model_loads(spec, clip.device, clip.precision),
    }
    result["spark_overhead"] = round((plain_rows / plain_s) / max(sail_rows / sail_s, 1e-9), 3)
    result["passed"] = bool(
        sail_rows == delta_rows == tar_count * per_tar and result["score_images_sail"]["model_loads"] == 1
    )
    shutil.rmtree(runs, ignore_errors=True)
    print(
        f"score-images on Sail into Delta: {result['score_images_sail']['images_per_s']} images/s, plain loop "
        f"{result['plain_loop']['images_per_s']} images/s (overhead {result['spark_overhead']}x); "
        f"{delta_rows} Delta rows for {tar_count * per_tar} images"
    )
    return result


def _installed(name: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True

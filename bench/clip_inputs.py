"""Inputs of the CLIP benchmarks: LAION-like captions and img2dataset-style tars (deterministic, offline)."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from laion_spark.sample.photos import encode, portrait_crop
from laion_spark.sample.vocabulary import ENGLISH
from laion_spark.sample.webdataset import SAMPLES_PER_TAR, WebdatasetSample, write_webdataset


def laion_like_captions(count: int, seed: int = 0) -> list[str]:
    """Captions whose word counts are log-normal (median 9 words, sigma 0.75), 1..120 words."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(np.exp(rng.normal(np.log(9), 0.75, count))), 1, 120).astype(int)
    return [" ".join(rng.choice(ENGLISH, n)) for n in lengths]


def write_tars(folder: Path, tars: int, *, rendered: bool, per_tar: int = SAMPLES_PER_TAR) -> list[Path]:
    """``tars`` tars (reused when the folder holds that many).

    ``rendered``: the sample generator's tars of 32 (rendered images, photographs, PNG/WebP, five bad
    members per run); else ``per_tar`` JPEG crops of the portrait photograph at 224..512 pixels, the
    size range img2dataset's resizing gives, with captions and records.
    """
    found = sorted(folder.glob("*.tar"))
    if len(found) == tars:
        return found
    shutil.rmtree(folder, ignore_errors=True)
    captions = laion_like_captions(tars * (SAMPLES_PER_TAR if rendered else per_tar), seed=1)
    if rendered:
        samples = [WebdatasetSample(f"https://img.example.com/{i}.jpg", c, 400, 300) for i, c in enumerate(captions)]
        return sorted(write_webdataset(0, samples, folder)["tars"])
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    photos = [portrait_crop(rng, "jpg") for _ in range(16)]
    scaled = []
    for photo in photos:
        image = Image.open(io.BytesIO(photo.data))
        side = int(rng.integers(224, 513))
        scaled.append(encode(image.resize((side, side * image.height // image.width)), "jpg"))
    paths = []
    for shard in range(tars):
        path = folder / f"{shard:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for index in range(per_tar):
                key = f"{shard:05d}{index:04d}"
                caption = captions[shard * per_tar + index]
                for name, data in (
                    (f"{key}.jpg", scaled[(shard * per_tar + index) % len(scaled)]),
                    (f"{key}.txt", caption.encode()),
                    (f"{key}.json", f'{{"url": "https://img.example.com/{key}.jpg"}}'.encode()),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(path)
    return paths

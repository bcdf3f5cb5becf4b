"""Inputs of the CLIP benchmarks: LAION-like captions and img2dataset-style tars (deterministic, offline)."""

from __future__ import annotations

import importlib.util
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
        rows = range(shard * per_tar, (shard + 1) * per_tar)
        path = folder / f"{shard:05d}.tar"
        write_jpeg_tar(path, [scaled[i % len(scaled)] for i in rows], [captions[i] for i in rows], f"{shard:05d}")
        paths.append(path)
    return paths


def write_jpeg_tar(path: Path, jpegs: list[bytes], captions: list[str], prefix: str = "00000") -> Path:
    """An img2dataset-style tar at ``path``: ``KEY.jpg`` + ``KEY.txt`` + ``KEY.json`` (a url) per JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for index, (jpeg, caption) in enumerate(zip(jpegs, captions, strict=True)):
            key = f"{prefix}{index:04d}"
            for name, data in (
                (f"{key}.jpg", jpeg),
                (f"{key}.txt", caption.encode()),
                (f"{key}.json", f'{{"url": "https://img.example.com/{key}.jpg"}}'.encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


#: Colour photographs that load offline: (package, folder inside it, file names). Those found are used.
PHOTO_FILES = (
    ("matplotlib", "mpl-data/sample_data", ("grace_hopper.jpg",)),
    ("sklearn", "datasets/images", ("china.jpg", "flower.jpg")),
    ("skimage", "data", ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")),
)


def offline_photos() -> dict[str, bytes]:
    """File name -> bytes of the :data:`PHOTO_FILES` installed here (found without importing the packages)."""
    found = {}
    for package, folder, names in PHOTO_FILES:
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            for name in names:
                path = Path(root) / folder / name
                if path.is_file() and name not in found:
                    found[name] = path.read_bytes()
    return found


def distinct_jpegs(count: int, seed: int = 0) -> tuple[list[bytes], list[str]]:
    """``count`` different JPEGs (quality 90, 4:2:0 chroma) and their sources: seeded crops of 50-100% of
    each side of the offline photographs in turn, scaled so that the short side is 224..512 pixels.

    Raises RuntimeError when none of :data:`PHOTO_FILES` is installed.
    """
    photos = offline_photos()
    names = sorted(photos)
    if not names:
        raise RuntimeError(f"no offline photograph found: none of {PHOTO_FILES} is installed here")
    rng = np.random.default_rng(seed)
    jpegs, sources = [], []
    for index in range(count):
        name = names[index % len(names)]
        with Image.open(io.BytesIO(photos[name])) as image:
            image = image.convert("RGB")
        width, height = image.size
        crop_w, crop_h = int(width * rng.uniform(0.5, 1.0)), int(height * rng.uniform(0.5, 1.0))
        left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        crop = image.crop((left, top, left + crop_w, top + crop_h))
        short = int(rng.integers(224, 513))
        scale = short / min(crop_w, crop_h)
        resized = crop.resize((max(1, round(crop_w * scale)), max(1, round(crop_h * scale))), Image.Resampling.LANCZOS)
        jpegs.append(encode(resized, "jpg"))
        sources.append(f"{name} crop {crop_w}x{crop_h}+{left}+{top} -> {resized.width}x{resized.height}")
    return jpegs, sources

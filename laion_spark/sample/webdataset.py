"""img2dataset-style webdataset shards: ``KEY.jpg`` + ``KEY.txt`` + ``KEY.json`` per sample, in tar files."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .seeding import stream

#: Tar shards written and samples per shard.
WEBDATASET_TARS = 2
SAMPLES_PER_TAR = 32
#: Fixed tar member attributes, so that a seed always gives byte-identical tars.
_MTIME = 1_640_995_200
_OWNER = "bigdata"


@dataclass(frozen=True)
class WebdatasetSample:
    """One downloaded image as img2dataset records it."""

    url: str
    caption: str
    width: int
    height: int


def render_image(rng: np.random.Generator, width: int, height: int) -> bytes:
    """A JPEG of a two-colour gradient with a few shapes, ``width`` x ``height`` pixels."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0.0, 2 * np.pi)
    ramp = x * np.cos(angle) + y * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    pixels = start[None, None, :] + ramp[..., None] * (end - start)[None, None, :]
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 4))):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1 + 1, y1 + 1), fill=colour)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _image_size(rng: np.random.Generator, width: int, height: int) -> tuple[int, int]:
    """The original's aspect ratio scaled so that both sides lie in 64..256 pixels."""
    long_side = int(rng.integers(64, 257))
    scale = long_side / max(width, height)
    return max(64, min(256, round(width * scale))), max(64, min(256, round(height * scale)))


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), _MTIME, 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = _OWNER
    tar.addfile(info, io.BytesIO(data))


def write_webdataset(seed: int, samples: list[WebdatasetSample], folder: Path) -> dict[str, object]:
    """Write the samples into ``NNNNN.tar`` shards with one deliberately corrupt (truncated) JPEG."""
    if not samples:
        raise ValueError("webdataset: no samples to write")
    rng = stream(seed, "webdataset")
    folder.mkdir(parents=True, exist_ok=True)
    corrupt_at = int(rng.integers(0, len(samples)))
    tars, corrupt_key = [], ""
    for shard, start in enumerate(range(0, len(samples), SAMPLES_PER_TAR)):
        path = folder / f"{shard:05d}.tar"
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for index, sample in enumerate(samples[start : start + SAMPLES_PER_TAR]):
                key = f"{shard:05d}{index:04d}"
                width, height = _image_size(rng, sample.width, sample.height)
                jpeg = render_image(rng, width, height)
                if start + index == corrupt_at:
                    jpeg, corrupt_key = jpeg[: len(jpeg) // 3], key
                record = {
                    "url": sample.url,
                    "caption": sample.caption,
                    "key": key,
                    "status": "success",
                    "error_message": None,
                    "width": width,
                    "height": height,
                    "original_width": sample.width,
                    "original_height": sample.height,
                }
                _member(tar, f"{key}.jpg", jpeg)
                _member(tar, f"{key}.txt", sample.caption.encode("utf-8"))
                _member(tar, f"{key}.json", json.dumps(record, ensure_ascii=False).encode("utf-8"))
        tars.append(path)
    return {"tars": tars, "samples": len(samples), "corrupt_keys": [corrupt_key]}

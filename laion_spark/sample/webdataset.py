"""img2dataset-style webdataset shards: ``KEY.jpg|png|webp`` + ``KEY.txt`` + ``KEY.json`` per sample, in tar files.

Most images are rendered (gradients and shapes); some are real photographs (:mod:`.photos`: the
camera JPEG and RGBA PNG matplotlib ships, as they are, and crops of the portrait as JPEG, PNG and
WebP). Rendered images are JPEG but for a few PNG and WebP ones. One sample of each
:data:`BAD_MEMBERS` kind is planted, named by the error kind ``score-images`` reports for it:

* ``truncated_image``: a JPEG cut to a third of its bytes;
* ``empty_image``: a zero-byte ``KEY.jpg``;
* ``undecodable_image``: random bytes as ``KEY.jpg``;
* ``missing_caption``: no ``KEY.txt``;
* ``unknown_member``: the image as ``KEY.bmp``, a type img2dataset does not write.

The manifest records which key holds which bad member, which keys are photographs, and the member
types, so that tests can count them.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .photos import ICON, PORTRAIT, Photo, encode, original, portrait_crop
from .seeding import stream

#: Tar shards written and samples per shard.
WEBDATASET_TARS = 2
SAMPLES_PER_TAR = 32
#: The planted bad samples, one each, by the error kind they give.
BAD_MEMBERS = ("truncated_image", "empty_image", "undecodable_image", "missing_caption", "unknown_member")
#: Photographs: the two originals, then crops of the portrait in these formats.
PHOTO_CROPS = ("jpg", "jpg", "png", "webp")
#: Rendered images written as PNG and as WebP (the others are JPEG).
RENDERED_FORMATS = ("png", "png", "png", "webp", "webp", "webp")
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


def render_image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A two-colour gradient with a few shapes, ``width`` x ``height`` pixels."""
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
    return image


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


def _plan(rng: np.random.Generator, count: int) -> list[str]:
    """What each sample holds: a bad-member kind, ``photo:N``, or the format of a rendered image."""
    photos = [f"photo:{i}" for i in range(2 + len(PHOTO_CROPS))]
    special = [*BAD_MEMBERS, *photos, *RENDERED_FORMATS]
    plan = ["jpg"] * count
    for index, what in zip(rng.permutation(count).tolist(), special, strict=False):
        plan[index] = what
    return plan


def _image(rng: np.random.Generator, what: str, sample: WebdatasetSample) -> tuple[Photo, str]:
    """The sample's image and its member type."""
    if what.startswith("photo:"):
        n = int(what.split(":")[1])
        photo = original(PORTRAIT if n == 0 else ICON) if n < 2 else portrait_crop(rng, PHOTO_CROPS[n - 2])
        return photo, photo.kind
    width, height = _image_size(rng, sample.width, sample.height)
    image = render_image(rng, width, height)
    kind = what if what in ("jpg", "png", "webp") else "jpg"
    data = encode(image, kind)
    if what == "truncated_image":
        data = data[: len(data) // 3]
    elif what == "empty_image":
        data = b""
    elif what == "undecodable_image":
        data = rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()
    elif what == "unknown_member":
        out = io.BytesIO()
        image.save(out, format="BMP")
        data, kind = out.getvalue(), "bmp"
    return Photo(data, kind, width, height, "rendered"), kind


def write_webdataset(seed: int, samples: list[WebdatasetSample], folder: Path) -> dict[str, object]:
    """Write the samples into ``NNNNN.tar`` shards with the photographs and bad members of the module docstring.

    Returns the tars, the sample count, ``corrupt_keys`` (every planted bad sample, sorted),
    ``bad_members`` (kind -> key), ``photos`` (key -> source) and ``formats`` (member type -> images).
    """
    if not samples:
        raise ValueError("webdataset: no samples to write")
    rng = stream(seed, "webdataset")
    folder.mkdir(parents=True, exist_ok=True)
    plan = _plan(rng, len(samples))
    tars, bad, photos, formats = [], {}, {}, Counter()
    for shard, start in enumerate(range(0, len(samples), SAMPLES_PER_TAR)):
        path = folder / f"{shard:05d}.tar"
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for index, sample in enumerate(samples[start : start + SAMPLES_PER_TAR]):
                key = f"{shard:05d}{index:04d}"
                what = plan[start + index]
                image, kind = _image(rng, what, sample)
                if what in BAD_MEMBERS:
                    bad[what] = key
                if what.startswith("photo:"):
                    photos[key] = image.source
                formats[kind] += 1
                record = {
                    "url": sample.url,
                    "caption": sample.caption,
                    "key": key,
                    "status": "success",
                    "error_message": None,
                    "width": image.width,
                    "height": image.height,
                    "original_width": sample.width,
                    "original_height": sample.height,
                }
                _member(tar, f"{key}.{kind}", image.data)
                if what != "missing_caption":
                    _member(tar, f"{key}.txt", sample.caption.encode("utf-8"))
                _member(tar, f"{key}.json", json.dumps(record, ensure_ascii=False).encode("utf-8"))
        tars.append(path)
    return {
        "tars": tars,
        "samples": len(samples),
        "corrupt_keys": sorted(bad.values()),
        "bad_members": bad,
        "photos": photos,
        "formats": dict(sorted(formats.items())),
    }

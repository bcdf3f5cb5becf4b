"""Real photographs for the sample tars, from the files matplotlib ships (they load offline).

``grace_hopper.jpg`` (a camera JPEG, 512 x 600, a public-domain U.S. Navy portrait) and
``Minduka_Present_Blue_Pack.png`` (a 128 x 128 RGBA PNG) are in matplotlib's ``mpl-data/sample_data``;
matplotlib is a runtime dependency. The originals go into the tars byte for byte, so that decoding and
preprocessing meet a real camera JPEG and an image with an alpha channel; crops of the portrait,
re-encoded as JPEG, PNG or WebP, add photographic content in every accepted format.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

PORTRAIT = "grace_hopper.jpg"
ICON = "Minduka_Present_Blue_Pack.png"
#: Member type -> the PIL format that writes it.
FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}


@dataclass(frozen=True)
class Photo:
    """An encoded photograph: bytes, member type, pixel size, and where it came from."""

    data: bytes
    kind: str
    width: int
    height: int
    source: str


@cache
def sample_file(name: str) -> bytes:
    """The bytes of one of matplotlib's sample data files."""
    import matplotlib

    return (Path(matplotlib.get_data_path()) / "sample_data" / name).read_bytes()


def original(name: str) -> Photo:
    """A sample file as it is, unchanged."""
    data = sample_file(name)
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    kind = "png" if name.endswith(".png") else "jpg"
    return Photo(data, kind, width, height, name)


def encode(image: Image.Image, kind: str) -> bytes:
    """``image`` written as ``kind`` (``jpg``, ``png`` or ``webp``) with fixed settings (deterministic bytes)."""
    out = io.BytesIO()
    if kind == "png":
        image.save(out, format="PNG", optimize=False)
    else:
        image.convert("RGB").save(out, format=FORMATS[kind], quality=90)
    return out.getvalue()


def portrait_crop(rng: np.random.Generator, kind: str) -> Photo:
    """A random crop of the portrait, scaled so that both sides lie in 64..256 pixels, encoded as ``kind``."""
    with Image.open(io.BytesIO(sample_file(PORTRAIT))) as portrait:
        portrait.load()
        full_w, full_h = portrait.size
        crop_w, crop_h = int(rng.integers(full_w // 3, full_w + 1)), int(rng.integers(full_h // 3, full_h + 1))
        left, top = int(rng.integers(0, full_w - crop_w + 1)), int(rng.integers(0, full_h - crop_h + 1))
        crop = portrait.crop((left, top, left + crop_w, top + crop_h))
    scale = int(rng.integers(64, 257)) / max(crop_w, crop_h)
    size = (max(64, min(256, round(crop_w * scale))), max(64, min(256, round(crop_h * scale))))
    resized = crop.resize(size, Image.Resampling.LANCZOS)
    return Photo(encode(resized, kind), kind, size[0], size[1], f"{PORTRAIT} crop")

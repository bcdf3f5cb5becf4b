"""Builders for the CLIP tests: img2dataset-style tars, a head for the tiny model, and plain open_clip loops."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from laion_spark.aesthetic.heads import save_linear_head
from laion_spark.clip.model import ClipModel
from laion_spark.sample.webdataset import SAMPLES_PER_TAR, WebdatasetSample, write_webdataset

#: The project's tiny architecture (random weights: the values mean nothing, the shapes are ViT-L/14's).
TINY = "laion-spark-tiny"
CAPTIONS = ["a red barn at dawn", "Café au lait ☕", "日本語のキャプション", "sunset 🌅 over the sea", ""]


def write_tars(folder: Path, tars: int, seed: int = 0) -> dict[str, object]:
    """``tars`` tars of 32 samples (photographs, PNG/WebP, one of each bad member); the webdataset manifest."""
    samples = [
        WebdatasetSample(f"https://img{i % 5}.example.com/{seed}/{i}.jpg", f"{CAPTIONS[i % 5]} #{i}", 320, 240)
        for i in range(tars * SAMPLES_PER_TAR)
    ]
    return write_webdataset(seed, samples, folder)


def linear_head(path: Path, dim: int = 768, seed: int = 1) -> Path:
    """A v1-style Linear(dim, 1) head file with LAION-like scale."""
    return save_linear_head(path, np.random.default_rng(seed).normal(scale=0.3, size=dim), 5.0)


def plain_image_embeddings(clip: ClipModel, tar: Path) -> dict[str, np.ndarray]:
    """key -> L2-normalised embedding of each image PIL opens, the plain open_clip way (no project code)."""
    out = {}
    with tarfile.open(tar) as handle:
        for member in handle.getmembers():
            key, _, kind = member.name.partition(".")
            if kind not in ("jpg", "png", "webp"):
                continue
            try:
                image = Image.open(io.BytesIO(handle.extractfile(member).read()))
                pixels = clip.preprocess(image).unsqueeze(0)
            except OSError:
                continue
            with torch.no_grad():
                out[key] = clip.model.encode_image(pixels, normalize=True)[0].numpy()
    return out


def kill_when(proc: subprocess.Popen, marker: Path, timeout: float = 180) -> None:
    """SIGKILL ``proc`` as soon as ``marker`` exists (a table's first commit), or when it ends or times out."""
    deadline = time.monotonic() + timeout
    while not (marker.exists() or proc.poll() is not None or time.monotonic() > deadline):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

"""Image decoding and preprocessing inside a task: a thread pool over PIL, or the GPU's JPEG decoder.

* :class:`ThreadDecoder` decodes with PIL and applies the model's own open_clip inference transform, in a
  pool of threads (PIL and torch release the GIL while they work). Every image has a time bound: one that
  is not done ``timeout`` seconds after its decode started is failed as ``decode_timeout`` and the run
  goes on (its thread is abandoned: the pool is replaced).
* :class:`GpuJpegDecoder` decodes the JPEG members of a chunk in one batched ``torchvision.io.decode_jpeg``
  call on the model's CUDA device, then resizes, crops and normalises on the device as the model's
  transform does (bicubic, antialiased: PIL's resampling to under one 1/255 level on average, a few at
  sharp edges; embeddings agree to a cosine above 0.9999). PNG and WebP
  members, JPEGs that do not end in an EOI marker (truncated ones, which nvJPEG would half-decode without
  an error) and any JPEG the GPU refuses go through the thread pool.

Both give a :class:`DecodedChunk`: a float tensor of the images that decoded (``N x 3 x H x W``), which
rows they are, and an error string per row that failed (``empty_image``, ``truncated_image``,
``undecodable_image``, ``decode_timeout``).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from .reader import error

EMPTY_IMAGE = "empty_image"
TRUNCATED_IMAGE = "truncated_image"
UNDECODABLE_IMAGE = "undecodable_image"
DECODE_TIMEOUT = "decode_timeout"
_JPEG_TYPES = ("jpg", "jpeg")
_EOI = b"\xff\xd9"


class ImageDecodeError(Exception):
    """One image could not be decoded; ``str(err)`` is the sample's error string."""


def decode_image(data: bytes, preprocess: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """``preprocess`` applied to the PIL image in ``data``; :class:`ImageDecodeError` with the error string."""
    if not data:
        raise ImageDecodeError(error(EMPTY_IMAGE))
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return preprocess(image)
    except UnidentifiedImageError:
        raise ImageDecodeError(error(UNDECODABLE_IMAGE, "not an image PIL can identify")) from None
    except Image.DecompressionBombError as err:
        raise ImageDecodeError(error(UNDECODABLE_IMAGE, str(err))) from None
    except (OSError, ValueError, SyntaxError) as err:
        kind = TRUNCATED_IMAGE if "truncated" in str(err).lower() else UNDECODABLE_IMAGE
        raise ImageDecodeError(error(kind, str(err))) from None


def default_threads() -> int:
    """Decoder threads when none are asked for: one per CPU core, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


@dataclass
class DecodedChunk:
    """What decoding a chunk of images gave: pixels of the rows that decoded, and errors of the others."""

    pixels: torch.Tensor
    rows: list[int]
    errors: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0


class PendingChunk:
    """A chunk submitted to a decoder; :meth:`result` waits for it (bounded per image)."""

    def __init__(self, finish: Callable[[], DecodedChunk]) -> None:
        self._finish = finish
        self._result: DecodedChunk | None = None

    def result(self) -> DecodedChunk:
        """The decoded chunk (computed once)."""
        if self._result is None:
            self._result = self._finish()
        return self._result


class ThreadDecoder:
    """PIL decode + the model's transform in a thread pool, each image bounded by ``timeout`` seconds."""

    def __init__(
        self, preprocess: Callable[[Image.Image], torch.Tensor], *, threads: int = 0, timeout: float = 30.0
    ) -> None:
        self.preprocess = preprocess
        self.threads = threads or default_threads()
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="laion-spark-decode")

    def submit(
        self, images: Sequence[bytes | None], types: Sequence[str | None], size: tuple[int, int]
    ) -> PendingChunk:
        """Start decoding ``images`` (``None`` entries are skipped: rows that already failed).

        ``types`` (member types) are not needed by PIL, which reads the format from the bytes; ``size`` is
        the model's input (height, width), for the empty tensor of a chunk without images.
        """
        started = time.perf_counter()
        starts: dict[int, float] = {}
        futures: dict[Future[torch.Tensor], int] = {}
        for row, data in enumerate(images):
            if data is not None:
                futures[self._pool.submit(self._timed, row, data, starts)] = row
        return PendingChunk(lambda: self._collect(futures, starts, size, started))

    def _timed(self, row: int, data: bytes, starts: dict[int, float]) -> torch.Tensor:
        starts[row] = time.monotonic()
        return decode_image(data, self.preprocess)

    def _collect(
        self, futures: dict[Future[torch.Tensor], int], starts: dict[int, float], size: tuple[int, int], started: float
    ) -> DecodedChunk:
        decoded: dict[int, torch.Tensor] = {}
        errors: dict[int, str] = {}
        pending = set(futures)
        abandoned = False
        while pending:
            done, pending = wait(pending, timeout=min(0.25, self.timeout), return_when=FIRST_COMPLETED)
            for future in done:
                row = futures[future]
                try:
                    decoded[row] = future.result()
                except ImageDecodeError as err:
                    errors[row] = str(err)
                except Exception as err:  # noqa: BLE001 - a transform failing on an odd image fails that row only
                    errors[row] = error(UNDECODABLE_IMAGE, f"{type(err).__name__}: {err}")
            now = time.monotonic()
            for future in [f for f in pending if now - starts.get(futures[f], now) > self.timeout]:
                pending.discard(future)
                errors[futures[future]] = error(DECODE_TIMEOUT, f"not decoded after {self.timeout:g} s")
                abandoned = True
        if abandoned:  # a thread is stuck in a decoder: leave it behind, decode the next chunks in a fresh pool
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="laion-spark-decode")
        rows = sorted(decoded)
        pixels = torch.stack([decoded[r] for r in rows]) if rows else torch.empty((0, 3, *size))
        return DecodedChunk(pixels, rows, errors, time.perf_counter() - started)

    def close(self) -> None:
        """Stop the pool (running decodes finish in the background)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class TensorPreprocess:
    """The model's inference transform on decoded uint8 tensors (C x H x W), on their own device.

    Supports open_clip's ``shortest`` resize mode (resize the short side, centre crop) and ``squash``;
    ``supported`` is False for other configs (the caller then decodes with PIL).
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        size = cfg.get("size", 224)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mode = cfg.get("resize_mode", "shortest")
        self.interpolation = cfg.get("interpolation", "bicubic")
        self.mean = torch.tensor(cfg.get("mean"), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(cfg.get("std"), dtype=torch.float32).view(3, 1, 1)
        self.supported = self.mode in ("shortest", "squash") and self.interpolation in ("bicubic", "bilinear")
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Float32 normalised ``3 x H x W`` tensor of one uint8 image."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        mode = InterpolationMode.BICUBIC if self.interpolation == "bicubic" else InterpolationMode.BILINEAR
        pixels = image.float()
        if self.mode == "squash":
            pixels = TF.resize(pixels, list(self.size), interpolation=mode, antialias=True)
        else:
            short = self.size[0] if self.size[0] == self.size[1] else max(self.size)
            pixels = TF.resize(pixels, [short], interpolation=mode, antialias=True)
            pixels = TF.center_crop(pixels, list(self.size))
        pixels = pixels.clamp_(0, 255).round_().div_(255)
        if pixels.device not in self._stats:  # one copy per device, not one per image
            self._stats[pixels.device] = (self.mean.to(pixels.device), self.std.to(pixels.device))
        mean, std = self._stats[pixels.device]
        return (pixels - mean) / std


class GpuJpegDecoder:
    """Batched JPEG decode on ``device`` (nvJPEG on CUDA) + :class:`TensorPreprocess`; others via ``fallback``."""

    def __init__(self, preprocess: TensorPreprocess, fallback: ThreadDecoder, device: str) -> None:
        self.preprocess = preprocess
        self.fallback = fallback
        self.device = device

    def submit(
        self, images: Sequence[bytes | None], types: Sequence[str | None], size: tuple[int, int]
    ) -> PendingChunk:
        """Start the chunk: non-JPEG rows go to the thread pool now, JPEG rows are decoded on :meth:`result`."""
        started = time.perf_counter()
        jpeg = [
            r
            for r, (data, kind) in enumerate(zip(images, types, strict=True))
            if data and kind in _JPEG_TYPES and data.rstrip(b"\x00").endswith(_EOI)
        ]
        on_device = set(jpeg)
        on_cpu = [None if r in on_device else data for r, data in enumerate(images)]
        cpu = self.fallback.submit(on_cpu, types, size)
        return PendingChunk(lambda: self._finish(images, jpeg, cpu, started))

    def _finish(
        self, images: Sequence[bytes | None], jpeg: list[int], cpu: PendingChunk, started: float
    ) -> DecodedChunk:
        decoded, refused = self._decode_jpegs([images[r] for r in jpeg])
        retry = [images[r] if i in refused else None for i, r in enumerate(jpeg)]
        second = self.fallback.submit(retry, [None] * len(retry), self.preprocess.size).result() if refused else None
        first = cpu.result()
        pixels: dict[int, torch.Tensor] = {}
        errors = dict(first.errors)
        for row, tensor in zip(first.rows, first.pixels, strict=True):
            pixels[row] = tensor.to(self.device)
        for i, tensor in decoded.items():
            pixels[jpeg[i]] = tensor
        if second is not None:
            for i, tensor in zip(second.rows, second.pixels, strict=True):
                pixels[jpeg[i]] = tensor.to(self.device)
            errors.update({jpeg[i]: message for i, message in second.errors.items()})
        rows = sorted(pixels)
        stacked = (
            torch.stack([pixels[r] for r in rows])
            if rows
            else torch.empty((0, 3, *self.preprocess.size), device=self.device)
        )
        return DecodedChunk(stacked, rows, errors, time.perf_counter() - started)

    def close(self) -> None:
        """Stop the fallback thread pool."""
        self.fallback.close()

    def _decode_jpegs(self, datas: list[bytes | None]) -> tuple[dict[int, torch.Tensor], set[int]]:
        """Preprocessed tensors of the JPEGs the device decoded (by position), and the positions it refused."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not datas:
            return {}, set()
        encoded = [torch.frombuffer(bytearray(d or b""), dtype=torch.uint8) for d in datas]
        try:
            images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self.device)
            out = dict(enumerate(images))
        except RuntimeError:  # one bad image fails the batch: find it one by one
            out = {}
            for i, data in enumerate(encoded):
                try:
                    out[i] = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
                except RuntimeError:
                    continue
        refused = set(range(len(datas))) - set(out)
        return {i: self.preprocess(image) for i, image in out.items()}, refused

"""Decoding inside a task: PIL threads with the model's transform, each image time-bounded; the JPEG tensor path."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import torch
from clip_builders import TINY
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from laion_spark.clip.decode import GpuJpegDecoder, TensorPreprocess, ThreadDecoder, decode_image
from laion_spark.clip.model import ClipModel, ModelSpec, load_model
from laion_spark.clip.reader import error_kind
from laion_spark.sample.photos import ICON, PORTRAIT, sample_file


@pytest.fixture(scope="module")
def clip() -> ClipModel:
    return load_model(ModelSpec.parse(TINY), "cpu")


def _png(data: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).save(out, format="PNG")
    return out.getvalue()


def _kind(data: bytes, clip: ClipModel) -> str:
    try:
        decode_image(data, clip.preprocess)
    except Exception as err:  # noqa: BLE001 - the error string is what is checked
        return error_kind(str(err))
    return "ok"


def test_each_bad_image_gets_its_kind(clip: ClipModel) -> None:
    jpeg, png = sample_file(PORTRAIT), _png(sample_file(PORTRAIT))
    assert _kind(jpeg, clip) == _kind(png, clip) == "ok"
    assert _kind(b"", clip) == "empty_image"
    assert _kind(jpeg[: len(jpeg) // 2], clip) == "truncated_image"
    assert _kind(png[: len(png) // 2], clip) == "truncated_image"
    assert _kind(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), clip) == (
        "undecodable_image"
    )


def test_the_rgba_png_photo_decodes_like_the_plain_transform(clip: ClipModel) -> None:
    pixels = decode_image(sample_file(ICON), clip.preprocess)
    expected = clip.preprocess(Image.open(io.BytesIO(sample_file(ICON))))
    assert pixels.shape == (3, 64, 64) and torch.equal(pixels, expected)


def test_a_decode_that_never_ends_times_out_and_the_run_goes_on(clip: ClipModel) -> None:
    release = threading.Event()

    def preprocess(image: Image.Image) -> torch.Tensor:
        if image.size == (13, 13):
            release.wait(60)  # a decoder stuck on one image
        return clip.preprocess(image)

    stuck = io.BytesIO()
    Image.new("RGB", (13, 13)).save(stuck, format="PNG")
    good = sample_file(PORTRAIT)
    decoder = ThreadDecoder(preprocess, threads=2, timeout=0.5)
    started = time.monotonic()
    chunk = decoder.submit([good, stuck.getvalue(), good], ["jpg", "png", "jpg"], (64, 64)).result()
    assert time.monotonic() - started < 30
    assert chunk.rows == [0, 2] and {r: error_kind(e) for r, e in chunk.errors.items()} == {1: "decode_timeout"}
    again = decoder.submit([good, good], ["jpg", "jpg"], (64, 64)).result()  # a fresh pool: not behind the stuck one
    assert again.rows == [0, 1] and not again.errors
    release.set()
    decoder.close()


def test_the_jpeg_tensor_path_matches_pil_within_a_few_levels(clip: ClipModel) -> None:
    data = sample_file(PORTRAIT)
    tensor = TensorPreprocess(clip.preprocess_cfg)
    assert tensor.supported and tensor.size == (64, 64)
    by_tensor = tensor(decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB))
    by_pil = decode_image(data, clip.preprocess)
    std = torch.tensor(clip.preprocess_cfg["std"]).view(3, 1, 1)
    levels = ((by_tensor - by_pil) * std * 255).abs()
    assert levels.mean() < 1.0 and levels.max() < 16  # bicubic resampling of PIL vs torch: about one level
    a, b = clip.encode_images(by_tensor[None]), clip.encode_images(by_pil[None])
    assert float(a[0] @ b[0]) > 0.9999


def test_jpeg_decoder_sends_other_formats_and_truncated_jpegs_to_the_threads(clip: ClipModel) -> None:
    jpeg = sample_file(PORTRAIT)
    decoder = GpuJpegDecoder(TensorPreprocess(clip.preprocess_cfg), ThreadDecoder(clip.preprocess), "cpu")
    images = [jpeg, jpeg[: len(jpeg) // 3], _png(jpeg), b"", b"\xff\xd8 not a jpeg \xff\xd9", None]
    chunk = decoder.submit(images, ["jpg", "jpg", "png", "jpg", "jpg", None], (64, 64)).result()
    decoder.close()
    assert chunk.rows == [0, 2] and chunk.pixels.shape == (2, 3, 64, 64)
    assert {r: error_kind(e) for r, e in chunk.errors.items()} == {
        1: "truncated_image",
        3: "empty_image",
        4: "undecodable_image",
    }
    np.testing.assert_allclose(chunk.pixels[1], decode_image(images[2], clip.preprocess), atol=1e-6)

"""CLIP models: the model spec users give, the project's tiny architecture, and the process-wide model cache.

A :class:`ModelSpec` is an open_clip architecture plus where its weights come from:

* ``ViT-B-32:laion2b_s34b_b79k`` -- a pretrained tag open_clip publishes; on a user's machine open_clip
  downloads it once into its own cache (Hugging Face hub cache). Nothing is downloaded at parse time.
* ``ViT-L-14:/path/ckpt.pt`` -- a local checkpoint, loaded with open_clip's loader (strict).
* ``ViT-B-32:random`` -- random initialisation (benchmarks only: such embeddings mean nothing).
* ``laion-spark-tiny`` (= ``laion-spark-tiny:random``) -- the project's own tiny architecture (``laion-spark-tiny.json`` next to this
  module, registered with open_clip on first use): a 2-layer ViT with 64-px input, 16-px patches and
  width 64, a 2-layer text transformer of width 64 over CLIP's 49,408-token BPE vocabulary, and a
  768-wide joint embedding (ViT-L/14's width, so LAION's L/14 heads accept its shapes). It exists for
  tests and the demo, random-initialised (its embeddings and scores carry no meaning); a checkpoint of
  it (``laion-spark-tiny:/path.pt``) loads like any other.

Random weights are drawn from a fixed seed (:data:`RANDOM_SEED`), on the CPU before the move to the
device, so every process -- every Spark worker, a rerun after a crash -- builds the same model.

:func:`load_model` builds a model at most once per Python process for each (architecture, weights,
precision, device) and reuses it across batches, tasks and jobs. Sail runs Python UDFs inside its own
process, several partitions at once: a lock guards the cache so that concurrent tasks share one load
instead of each building a copy.
"""

from __future__ import annotations

import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .params import TINY_MODEL

if TYPE_CHECKING:
    import numpy as np
    import torch

RANDOM = "random"
#: Seed of random-initialised weights: the same model in every process.
RANDOM_SEED = 0
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class ModelSpecError(InputError):
    """A model spec names an unknown architecture, tag or checkpoint."""


def register_tiny() -> None:
    """Register the project's tiny architecture with open_clip (idempotent)."""
    import open_clip

    if TINY_MODEL in open_clip.list_models():
        return
    config = resources.files(__package__).joinpath(f"{TINY_MODEL}.json")
    if isinstance(config, Path):
        open_clip.add_model_config(config)
        return
    # Inside a --py-files zip. open_clip reads configs from real files, named as their model, and only while
    # registering them: the copy goes at once, since Spark's Python workers end without running atexit hooks.
    with tempfile.TemporaryDirectory(prefix="laion-spark-clip-") as scratch:
        copy = Path(scratch) / f"{TINY_MODEL}.json"
        copy.write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
        open_clip.add_model_config(copy)


@dataclass(frozen=True)
class ModelSpec:
    """An open_clip architecture and its weights: ``random``, a pretrained tag, or a checkpoint path."""

    architecture: str
    weights: str

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """Parse ``ARCH:TAG``, ``ARCH:/path/ckpt.pt``, ``ARCH:random`` or ``laion-spark-tiny``.

        Checks the architecture against open_clip's registry, a tag against the tags open_clip publishes
        for that architecture and a path for an existing file. Raises :class:`ModelSpecError` naming
        ``text`` otherwise. Downloads nothing.
        """
        import open_clip

        register_tiny()
        arch, sep, weights = str(text).strip().partition(":")
        if arch == TINY_MODEL and weights in ("", RANDOM):
            return cls(TINY_MODEL, RANDOM)
        if arch not in open_clip.list_models():
            raise ModelSpecError(
                f"model {text!r}: unknown open_clip architecture {arch!r} (e.g. ViT-B-32, ViT-L-14, {TINY_MODEL})"
            )
        if not sep or not weights:
            raise ModelSpecError(
                f"model {text!r}: give the weights as {arch}:TAG (a pretrained tag), {arch}:/path/to/checkpoint "
                f"or {arch}:{RANDOM}"
            )
        if weights == RANDOM:
            return cls(arch, RANDOM)
        if _looks_like_path(weights):
            path = Path(weights).expanduser()
            if not path.is_file():
                raise ModelSpecError(f"model {text!r}: checkpoint {path} does not exist")
            return cls(arch, str(path.resolve()))
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if weights not in tags:
            known = ", ".join(tags) if tags else "none"
            raise ModelSpecError(
                f"model {text!r}: {weights!r} is neither a pretrained tag of {arch} ({known}) nor a checkpoint file"
            )
        return cls(arch, weights)

    @property
    def kind(self) -> str:
        """``random``, ``checkpoint`` or ``pretrained``."""
        if self.weights == RANDOM:
            return RANDOM
        return "checkpoint" if _looks_like_path(self.weights) else "pretrained"

    @property
    def name(self) -> str:
        """The canonical spec text, recorded with every output (``laion-spark-tiny:random`` ...)."""
        return f"{self.architecture}:{self.weights}"

    def describe(self) -> str:
        """The spec for humans; random weights are said to be random."""
        if self.kind == RANDOM:
            return f"{self.name} (random init: its embeddings and scores carry no meaning)"
        return self.name

    def embed_dim(self) -> int:
        """Width of the joint (projected) embedding, from the architecture's config (no model is built)."""
        import open_clip

        register_tiny()
        return int(open_clip.get_model_config(self.architecture)["embed_dim"])


def _looks_like_path(weights: str) -> bool:
    return "/" in weights or "\\" in weights or weights.startswith("~") or weights.endswith(_CHECKPOINT_SUFFIXES)


@dataclass
class ClipModel:
    """A loaded open_clip model in eval mode, its inference transform, tokenizer, device and dtype."""

    spec: ModelSpec
    device: str
    precision: str
    model: Any
    preprocess: Any
    tokenizer: Any
    dtype: torch.dtype

    @property
    def preprocess_cfg(self) -> dict[str, Any]:
        """open_clip's preprocessing config of the image tower (size, mean, std, interpolation, resize_mode)."""
        return dict(self.model.visual.preprocess_cfg)

    @property
    def image_dim(self) -> int:
        """Width of the image embedding."""
        return int(self.model.visual.output_dim)

    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        """L2-normalised float32 embeddings (N, d) of preprocessed images (N, 3, H, W), on any device."""
        import torch

        with torch.inference_mode():
            features = self.model.encode_image(pixels.to(self.device, self.dtype, non_blocking=True))
            features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy()


_LOCK = threading.Lock()
_CACHE: dict[tuple[ModelSpec, str, str], ClipModel] = {}
_LOADS: Counter[tuple[ModelSpec, str, str]] = Counter()


def load_model(spec: ModelSpec, device: str | None = None, precision: str | None = None) -> ClipModel:
    """The process-wide :class:`ClipModel` for ``spec`` on ``device`` in ``precision``, built on first use.

    ``device`` defaults to :func:`~laion_spark.clip.device.select_device` (the task's GPU, else CPU) and
    ``precision`` to fp16 on a GPU, fp32 on the CPU. The first caller for a key builds the model under a
    lock; every later batch, task and job of the process gets the same object.
    """
    from .device import precision_for, select_device

    device = device or select_device()
    precision = precision or precision_for(device)
    key = (spec, device, precision)
    with _LOCK:
        loaded = _CACHE.get(key)
        if loaded is None:
            loaded = _build(spec, device, precision)
            _CACHE[key] = loaded
            _LOADS[key] += 1
    return loaded


def model_loads(spec: ModelSpec, device: str, precision: str) -> int:
    """How many times this process has built ``spec`` on ``device`` in ``precision`` (0 or 1 with the cache)."""
    with _LOCK:
        return _LOADS[(spec, device, precision)]


def _build(spec: ModelSpec, device: str, precision: str) -> ClipModel:
    import open_clip
    import torch

    register_tiny()
    pretrained = None if spec.kind == RANDOM else spec.weights
    # Random weights come from a fixed seed, so that every process (every Spark worker, every rerun) holds
    # the same model; the caller's random state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.architecture, pretrained=pretrained, precision=precision, device=device
        )
    model.eval()
    tokenizer = open_clip.get_tokenizer(spec.architecture)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    return ClipModel(spec, device, precision, model, preprocess, tokenizer, dtype)

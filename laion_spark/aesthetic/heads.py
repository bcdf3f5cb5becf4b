"""LAION aesthetic heads: resolve, load and apply them to CLIP image embeddings.

A head is named (``laion-v1-l14`` ...) or given as a ``.pth`` path. Named
heads resolve to the user cache (``$LAION_SPARK_CACHE`` or
``~/.cache/laion-spark/heads``) and, where the machine has network access, are
fetched once from their published location.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ..errors import InputError
from .params import HEADS, head_name
from .state_dict import read_state_dict

_MODEL_BY_DIM = {768: "ViT-L-14", 512: "ViT-B-32", 1024: "ViT-H-14"}
_V2_LAYERS = (0, 2, 4, 6, 7)


class HeadNotFoundError(InputError, FileNotFoundError):
    """A named head is neither cached nor downloadable."""


class HeadFormatError(InputError):
    """A head file is not a LAION v1 (linear) or v2 (MLP) state dict."""


def cache_dir() -> Path:
    """Where named heads are kept: ``$LAION_SPARK_CACHE/heads`` or ``~/.cache/laion-spark/heads``."""
    root = os.environ.get("LAION_SPARK_CACHE") or Path.home() / ".cache" / "laion-spark"
    return Path(root) / "heads"


def resolve_head(name_or_path: str | Path, *, download: bool = True) -> Path:
    """Path of the head file for a name or path, fetching a named head once if needed."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    spec = HEADS.get(str(name_or_path))
    if spec is None:
        known = ", ".join(HEADS)
        raise HeadNotFoundError(f"head {name_or_path!r} is neither a file nor a known head ({known})")
    cached = cache_dir() / spec.filename
    if cached.is_file():
        return cached
    if download and os.environ.get("LAION_SPARK_OFFLINE", "") in ("", "0"):
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".part")
            with urllib.request.urlopen(spec.url, timeout=20) as response, partial.open("wb") as out:
                out.write(response.read())
            partial.replace(cached)
            return cached
        except OSError as err:
            reason = f"download from {spec.url} failed ({err})"
    else:
        reason = "offline (LAION_SPARK_OFFLINE is set)"
    raise HeadNotFoundError(
        f"head {spec.name!r} is not cached and {reason}. Put {spec.filename} (published at {spec.url}) "
        f"in {cached.parent} or pass its path with --head."
    )


@dataclass(frozen=True)
class Head:
    """An aesthetic head reduced to its inference-time affine map ``score = e @ weight + bias``.

    v1 heads are one Linear layer; the v2 MLP has no activations, so at
    inference (dropout off) it is exactly the product of its layers.
    """

    name: str
    model: str
    weight: np.ndarray
    bias: float

    @property
    def dim(self) -> int:
        """Embedding width the head expects."""
        return int(self.weight.shape[0])

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """float32 scores of (N, dim) embeddings, re-normalised to unit length first (fp16 rounding).

        Rows that are all zero or hold NaN/inf score NaN; callers quarantine them.
        """
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"head {self.name} expects (N, {self.dim}) embeddings, got {embeddings.shape}")
        if embeddings.dtype == np.float16:  # shards: scored from their bits, never widened to a float32 copy
            bits = np.ascontiguousarray(embeddings).view(np.uint16)
            return _score_half(bits, _half_to_float(), self.weight.astype(np.float64), float(self.bias))
        emb = np.asarray(embeddings, dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", emb, emb))
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = (emb @ self.weight.astype(np.float32)) / norms + np.float32(self.bias)
        return scores.astype(np.float32)


@cache
def _half_to_float() -> np.ndarray:
    """Every float16 bit pattern's float32 value (256 KiB: stays in cache)."""
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _score_half(bits: np.ndarray, table: np.ndarray, weight: np.ndarray, bias: float) -> np.ndarray:
    """:meth:`Head.score` of float16 rows given as their bits, in one pass (float64 sums): numpy's float16 to
    float32 conversion costs ~3x the whole score. Releases the GIL (Sail runs Python tasks in-process)."""
    rows, dim = bits.shape
    scores = np.empty(rows, dtype=np.float32)
    for i in range(rows):
        dot, squares = 0.0, 0.0
        for j in range(dim):
            value = table[bits[i, j]]
            dot += value * weight[j]
            squares += value * value
        scores[i] = dot / np.sqrt(squares) + bias  # all zero: 0 / 0 = NaN; NaN or inf: NaN
    return scores


def head_from_state_dict(state: Mapping[str, Any], *, name: str, model: str | None = None) -> Head:
    """Build a :class:`Head` from a v1 (``weight``/``bias``) or v2 (``layers.N.*``) state dict of torch tensors or
    float numpy arrays (:func:`~laion_spark.aesthetic.state_dict.read_state_dict`); raises :class:`HeadFormatError`."""
    if set(state) == {"weight", "bias"}:
        keys = [("weight", "bias")]
    elif all(f"layers.{i}.weight" in state and f"layers.{i}.bias" in state for i in _V2_LAYERS):
        keys = [(f"layers.{i}.weight", f"layers.{i}.bias") for i in _V2_LAYERS]
    else:
        raise HeadFormatError(
            f"head {name}: expected keys weight/bias (v1) or layers.{{0,2,4,6,7}}.weight/bias (v2), "
            f"got {sorted(map(str, state))}"
        )
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    for w_key, b_key in keys:
        w, b = _layer_array(state, w_key, name), _layer_array(state, b_key, name)
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise HeadFormatError(f"head {name}: {w_key} {w.shape} and {b_key} {b.shape} do not form a Linear layer")
        if weight is not None and weight.shape[1] != w.shape[1]:
            raise HeadFormatError(
                f"head {name}: {w_key} takes {w.shape[1]} inputs, the layer before gives {weight.shape[1]}"
            )
        weight = w.T if weight is None else weight @ w.T
        bias = b if bias is None else bias @ w.T + b
    assert weight is not None and bias is not None
    if weight.shape[1] != 1:
        raise HeadFormatError(f"head {name}: final output width is {weight.shape[1]}, expected 1")
    dim = weight.shape[0]
    return Head(
        name=name, model=model or _MODEL_BY_DIM.get(dim, f"clip-{dim}"), weight=weight[:, 0], bias=float(bias[0])
    )


def _layer_array(state: Mapping[str, Any], key: str, name: str) -> np.ndarray:
    value = state[key]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype(np.float64)
    if not hasattr(value, "detach"):
        raise HeadFormatError(f"head {name}: {key} is a {type(value).__name__}, expected a tensor")
    return value.detach().double().cpu().numpy()


def load_head(name_or_path: str | Path, *, download: bool = True) -> Head:
    """Load a named or file head (see :func:`resolve_head`).

    A file named like a published head (``sa_0_4_vit_l_14_linear.pth`` ...)
    takes that head's name (``laion-v1-l14``); any other file is named by its stem.
    A file in ``torch.save``'s zip format is read without importing torch
    (:func:`~laion_spark.aesthetic.state_dict.read_state_dict`), any other with
    ``torch.load(weights_only=True)``.

    Raises :class:`HeadNotFoundError` and :class:`HeadFormatError`.
    """
    path = resolve_head(name_or_path, download=download)
    spec = HEADS.get(head_name(str(name_or_path) if str(name_or_path) in HEADS else path.name))
    state = read_state_dict(path)
    if state is None:  # not torch's zip format of float tensors: torch reads it, or says why not
        state = _torch_load(path)
    return head_from_state_dict(state, name=spec.name if spec else path.stem, model=spec.model if spec else None)


def _torch_load(path: Path) -> Mapping[str, Any]:
    """The state dict at ``path`` as ``torch.load(weights_only=True)`` reads it; raises :class:`HeadFormatError`."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise HeadFormatError(f"{path}: not a readable torch state dict ({err})") from err
    if not isinstance(state, dict):
        raise HeadFormatError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def save_linear_head(path: str | Path, weight: np.ndarray, bias: float) -> Path:
    """Write a v1-style (``nn.Linear(d, 1)``) head file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "weight": torch.tensor(np.asarray(weight, dtype=np.float32)[None, :]),
        "bias": torch.tensor([float(bias)], dtype=torch.float32),
    }
    torch.save(state, path)
    return path

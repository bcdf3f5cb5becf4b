"""Torch state dict files read without torch: the same arrays as ``torch.load``, and ``None`` for what is not read."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from laion_spark.aesthetic.heads import load_head
from laion_spark.aesthetic.state_dict import read_state_dict

REFERENCE_HEADS = ["sa_0_4_vit_l_14_linear.pth", "sa_0_4_vit_b_32_linear.pth", "sa_0_4_vit_b_16_linear.pth"]


def _as_torch_loads(path: Path) -> dict[str, np.ndarray]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {
        key: value.float().numpy() if value.dtype == torch.bfloat16 else value.numpy() for key, value in state.items()
    }


def _assert_same(ours: dict[str, np.ndarray] | None, theirs: dict[str, np.ndarray]) -> None:
    assert ours is not None
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype and ours[key].shape == value.shape, key
        assert ours[key].tobytes() == value.tobytes(), key


@pytest.mark.parametrize("head_file", REFERENCE_HEADS)
def test_laion_reference_heads_read_as_torch_reads_them(reference: Path, head_file: str) -> None:
    _assert_same(read_state_dict(reference / head_file), _as_torch_loads(reference / head_file))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_every_float_dtype_and_strided_views_read_as_torch_reads_them(tmp_path: Path, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    base = torch.randn(6, 5).to(dtype)
    state = {
        "contiguous": base,
        "transposed": base.t(),  # strides (1, 5)
        "offset": base[2:, 1:4],  # a view from the middle of its storage
        "scalar": base[1, 1],
        "empty": base[:0],
        "shared": base[3],  # a second view of the same storage
    }
    path = tmp_path / "views.pth"
    torch.save(state, path)
    _assert_same(read_state_dict(path), _as_torch_loads(path))


def test_an_mlp_state_dict_gives_the_head_torch_gives(tmp_path: Path) -> None:
    mlp = nn.Sequential(nn.Linear(16, 8), nn.Dropout(0.1), nn.Linear(8, 4), nn.Dropout(0.1), nn.Linear(4, 2))
    mlp.append(nn.Dropout(0.1)).append(nn.Linear(2, 2)).append(nn.Linear(2, 1))
    path = tmp_path / "v2.pth"
    torch.save({f"layers.{k}": v for k, v in mlp.state_dict().items()}, path)
    assert read_state_dict(path) is not None
    embeddings = np.random.default_rng(0).normal(size=(32, 16)).astype(np.float32)
    with torch.no_grad():
        expected = mlp.eval()(torch.from_numpy(embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)))
    np.testing.assert_allclose(load_head(path).score(embeddings), expected.numpy()[:, 0], atol=1e-5)


def _saved(state: object, **options: object) -> bytes:
    sink = io.BytesIO()
    torch.save(state, sink, **options)
    return sink.getvalue()


def _with_storage(data: bytes, key: str, payload: bytes) -> bytes:
    """``data`` (a torch zip archive) with storage ``key``'s bytes replaced by ``payload``."""
    source, sink = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(sink, "w") as target:
        for item in source.infolist():
            target.writestr(item, payload if item.filename.endswith(f"/data/{key}") else source.read(item))
    return sink.getvalue()


LINEAR = {"weight": torch.ones(1, 8), "bias": torch.zeros(1)}
NOT_READ = {
    "torch's legacy format": lambda: _saved(LINEAR, _use_new_zipfile_serialization=False),
    "an integer tensor": lambda: _saved({"weight": torch.ones(1, 8, dtype=torch.int64), "bias": torch.zeros(1)}),
    "a class beyond tensors and dicts": lambda: _saved({"weight": torch.ones(1, 8), "shape": torch.Size([1, 8])}),
    "a storage shorter than its tensor": lambda: _with_storage(_saved(LINEAR), "0", b"\0" * 16),
    "a broadcast view, larger than its storage": lambda: _saved(
        {"weight": torch.ones(1, 1).expand(1, 8), "bias": torch.zeros(1)}
    ),
    "keys that are not names": lambda: _saved({0: torch.ones(1, 8), 1: torch.zeros(1)}),
    "a list, not a dict": lambda: _saved([torch.ones(2)]),
    "not a zip archive": lambda: b"not a torch file",
}


@pytest.mark.parametrize("case", list(NOT_READ))
def test_what_is_not_read_here_is_left_to_torch(tmp_path: Path, case: str) -> None:
    path = tmp_path / "head.pth"
    path.write_bytes(NOT_READ[case]())
    assert read_state_dict(path) is None


def test_a_legacy_format_head_still_loads_through_torch(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pth"
    path.write_bytes(
        _saved({"weight": torch.full((1, 8), 0.5), "bias": torch.tensor([2.0])}, _use_new_zipfile_serialization=False)
    )
    head = load_head(path)
    assert (head.dim, head.bias) == (8, 2.0) and np.all(head.weight == 0.5)


def test_loading_a_laion_head_does_not_import_torch(reference: Path) -> None:
    code = (
        "import sys; from laion_spark.aesthetic.heads import load_head; "
        f"head = load_head({str(reference / REFERENCE_HEADS[0])!r}); "
        "print(head.name, head.dim, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["laion-v1-l14", "768", "False"]

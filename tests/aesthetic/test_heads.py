"""LAION aesthetic heads: loading v1/v2 state dicts, naming, errors, and LAION's reference files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from laion_spark.aesthetic.heads import (
    HEADS,
    HeadFormatError,
    HeadNotFoundError,
    cache_dir,
    head_from_state_dict,
    load_head,
    save_linear_head,
)


def _unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _v2_mlp(seed: int = 0) -> nn.Sequential:
    """improved-aesthetic-predictor's MLP (DESIGN section 5), randomly initialised."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(768, 1024),
        nn.Dropout(0.2),
        nn.Linear(1024, 128),
        nn.Dropout(0.2),
        nn.Linear(128, 64),
        nn.Dropout(0.1),
        nn.Linear(64, 16),
        nn.Linear(16, 1),
    )


def test_v1_state_dict_scores_like_torch_linear(tmp_path: Path) -> None:
    linear = nn.Linear(512, 1)
    path = tmp_path / "v1.pth"
    torch.save(linear.state_dict(), path)
    head = load_head(path)
    embeddings = _unit_rows(64, 512)
    expected = linear(torch.from_numpy(embeddings)).detach().numpy()[:, 0]
    assert head.dim == 512
    np.testing.assert_allclose(head.score(embeddings), expected, atol=1e-5)


def test_v2_affine_collapse_equals_torch_mlp_in_eval_mode(tmp_path: Path) -> None:
    mlp = _v2_mlp().eval()
    path = tmp_path / "v2.pth"
    torch.save({f"layers.{k}": v for k, v in mlp.state_dict().items()}, path)
    head = load_head(path)
    embeddings = _unit_rows(256, 768, seed=1)
    with torch.no_grad():
        expected = mlp(torch.from_numpy(embeddings)).numpy()[:, 0]
    assert head.dim == 768
    np.testing.assert_allclose(head.score(embeddings), expected, atol=1e-4)


def test_score_renormalises_rows_and_returns_float32() -> None:
    head = head_from_state_dict({"weight": torch.randn(1, 768), "bias": torch.tensor([4.0])}, name="h")
    embeddings = _unit_rows(8, 768)
    scaled = (embeddings * np.linspace(0.5, 2.0, 8)[:, None]).astype(np.float16)
    scores = head.score(scaled)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, head.score(embeddings), atol=2e-2)


def test_score_refuses_wrong_embedding_width() -> None:
    head = head_from_state_dict({"weight": torch.randn(1, 768), "bias": torch.tensor([0.0])}, name="h")
    with pytest.raises(ValueError, match=r"expects \(N, 768\)"):
        head.score(_unit_rows(4, 512))


def test_offline_named_head_error_says_where_to_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAION_SPARK_CACHE", str(tmp_path))
    monkeypatch.setenv("LAION_SPARK_OFFLINE", "1")
    with pytest.raises(HeadNotFoundError) as err:
        load_head("laion-v2-l14")
    message = str(err.value)
    assert str(tmp_path / "heads") in message
    assert HEADS["laion-v2-l14"].filename in message
    assert HEADS["laion-v2-l14"].url in message


def test_named_head_resolves_to_the_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAION_SPARK_CACHE", str(tmp_path))
    monkeypatch.setenv("LAION_SPARK_OFFLINE", "1")
    save_linear_head(cache_dir() / HEADS["laion-v1-b32"].filename, np.ones(512), 1.5)
    head = load_head("laion-v1-b32")
    assert (head.name, head.model, head.dim, head.bias) == ("laion-v1-b32", "ViT-B-32", 512, 1.5)


def test_unknown_head_name_lists_the_known_heads() -> None:
    with pytest.raises(HeadNotFoundError, match="laion-v1-l14"):
        load_head("no-such-head")


def test_state_dict_with_unexpected_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.randn(1, 768), "fc.bias": torch.randn(1)}, path)
    with pytest.raises(HeadFormatError, match="fc.weight"):
        load_head(path)


def test_head_with_more_than_one_output_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two_outputs.pth"
    torch.save(nn.Linear(768, 2).state_dict(), path)
    with pytest.raises(HeadFormatError, match="output width is 2"):
        load_head(path)


def test_file_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(HeadFormatError, match="garbage.pth"):
        load_head(path)


@pytest.mark.parametrize(
    ("head_file", "embeddings_dir"),
    [("sa_0_4_vit_l_14_linear.pth", "vit_l_14_embeddings"), ("sa_0_4_vit_b_32_linear.pth", "vit_b_32_embeddings")],
)
def test_reference_v1_heads_score_rating_buckets_strictly_increasing(
    reference: Path, head_file: str, embeddings_dir: str
) -> None:
    head = load_head(reference / head_file)
    ratings = np.concatenate([np.load(reference / embeddings_dir / f"rating{i}.npy") for i in range(10)])
    scores = head.score(ratings)
    assert np.all(np.diff(scores) > 0), scores

"""Model specs, the tiny architecture, checkpoints and the process-wide model cache."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from clip_builders import TINY
from installs import clean_env

from laion_spark.clip.model import ModelSpec, ModelSpecError, _build, load_model, model_loads
from laion_spark.clip.params import TINY_EMBED_DIM, TINY_TEXT_WIDTH


def test_the_tiny_spec_is_random_and_says_so() -> None:
    spec = ModelSpec.parse(TINY)
    assert spec == ModelSpec.parse(f"{TINY}:random") == ModelSpec(TINY, "random")
    assert spec.kind == "random" and spec.name == "laion-spark-tiny:random"
    assert "random init" in spec.describe()
    assert spec.embed_dim() == TINY_EMBED_DIM == 768


def test_a_pretrained_tag_parses_without_downloading() -> None:
    spec = ModelSpec.parse("ViT-B-32:laion2b_s34b_b79k")
    assert (spec.kind, spec.architecture, spec.weights, spec.embed_dim()) == (
        "pretrained",
        "ViT-B-32",
        "laion2b_s34b_b79k",
        512,
    )
    assert ModelSpec.parse("ViT-L-14:random").embed_dim() == 768


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ViT-Q-99:openai", "unknown open_clip architecture 'ViT-Q-99'"),
        ("ViT-B-32", "give the weights as ViT-B-32:TAG"),
        ("ViT-B-32:no_such_tag", "'no_such_tag' is neither a pretrained tag of ViT-B-32"),
        ("ViT-L-14:/nowhere/ckpt.pt", "checkpoint /nowhere/ckpt.pt does not exist"),
        (f"{TINY}:openai", f"'openai' is neither a pretrained tag of {TINY} (none)"),
    ],
)
def test_a_bad_spec_is_an_input_error_naming_it(text: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=re.escape(f"model {text!r}")) as caught:
        ModelSpec.parse(text)
    assert message in str(caught.value)


def test_random_weights_are_the_same_whatever_the_global_seed() -> None:
    spec = ModelSpec.parse(TINY)
    torch.manual_seed(123)
    first = _build(spec, "cpu", "fp32").model.state_dict()
    state = torch.random.get_rng_state()
    second = _build(spec, "cpu", "fp32").model.state_dict()
    assert torch.equal(torch.random.get_rng_state(), state), "the caller's random state is left alone"
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_local_checkpoint_loads_with_open_clips_loader(tmp_path: Path) -> None:
    torch.manual_seed(7)  # other weights than the seeded random init
    trained, _, _ = open_clip.create_model_and_transforms(TINY)
    torch.save(trained.state_dict(), tmp_path / "tiny.pt")
    spec = ModelSpec.parse(f"{TINY}:{tmp_path / 'tiny.pt'}")
    assert spec.kind == "checkpoint" and spec.weights == str(tmp_path / "tiny.pt")
    loaded = load_model(spec, "cpu")
    pixels = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = trained.eval().encode_image(pixels, normalize=True).numpy()
    np.testing.assert_allclose(loaded.encode_images(pixels), expected, atol=1e-6)


def test_the_cache_builds_a_model_once_for_concurrent_callers(tmp_path: Path) -> None:
    torch.save(_build(ModelSpec.parse(TINY), "cpu", "fp32").model.state_dict(), tmp_path / "own-key.pt")
    spec = ModelSpec.parse(f"{TINY}:{tmp_path / 'own-key.pt'}")
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(load_model(spec, "cpu", "fp32"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 4 and all(g is got[0] for g in got)
    assert model_loads(spec, "cpu", "fp32") == 1
    assert load_model(spec, "cpu", "fp16") is not got[0]  # another precision is another entry


def test_fp16_weights_give_float32_unit_embeddings_close_to_fp32() -> None:
    spec = ModelSpec.parse(TINY)
    fp32, fp16 = load_model(spec, "cpu", "fp32"), load_model(spec, "cpu", "fp16")
    assert fp16.dtype == torch.float16 and fp16.model.visual.conv1.weight.dtype == torch.float16
    pixels = torch.randn(5, 3, 64, 64)
    low = fp16.encode_images(pixels)
    assert low.dtype == np.float32 and np.allclose(np.linalg.norm(low, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(low, fp32.encode_images(pixels), atol=2e-3)
    assert fp32.image_dim == TINY_EMBED_DIM and fp32.model.ln_final.normalized_shape[0] == TINY_TEXT_WIDTH


#: A Spark Python worker's life with the package from make dist's zip: the tiny model built, then os._exit
#: (pyspark's daemon ends its workers so, without atexit hooks).
_WORKER = """
import os, sys
import laion_spark.clip.model as m
m.register_tiny()
model = m.load_model(m.ModelSpec.parse(sys.argv[1]), device="cpu")
print(m.__file__, model.image_dim, flush=True)
os._exit(0)
"""


@pytest.mark.dist
def test_the_tiny_config_from_the_zip_leaves_no_files_behind(dist, tmp_path: Path) -> None:
    _, py_files = dist
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", _WORKER, TINY],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(py_files), TMPDIR=str(scratch)),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    where, dim = run.stdout.split()
    assert where.startswith(str(py_files)) and int(dim) == TINY_EMBED_DIM
    assert list(scratch.glob("laion-spark-clip-*")) == []  # others' (timm's optional wandb, torch's cache) aside

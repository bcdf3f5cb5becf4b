"""bench/clip_gpu.py's pieces that need no GPU: its refusal without CUDA, the FLOP counts, the peak table."""

from __future__ import annotations

import open_clip
import pytest
import torch

from bench.clip_gpu import counted_flops, main, peak_tflops


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: bench/clip_gpu.py needs a CUDA GPU")


def test_vit_l_14_costs_about_160_gflop_per_image_and_b32_text_6_at_77_tokens() -> None:
    with torch.device("meta"):
        vit_l = open_clip.create_model("ViT-L-14", device="meta")
        vit_b = open_clip.create_model("ViT-B-32", device="meta")
        image, tokens = torch.empty(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long)
    assert counted_flops(lambda: vit_l.encode_image(image)) / 1e9 == pytest.approx(162, abs=2)
    assert counted_flops(lambda: vit_b.encode_text(tokens)) / 1e9 == pytest.approx(6.0, abs=0.1)


def test_the_peak_is_looked_up_by_the_most_specific_name() -> None:
    assert peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA A10G") == 70.0
    assert peak_tflops("Some Future GPU") is None

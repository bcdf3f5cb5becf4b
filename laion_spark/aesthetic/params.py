"""Scoring parameters shared by the CLI, the pipeline config and the jobs (no engine or numpy imported).

The published LAION heads (name -> CLIP model, width, file and where it is
published) and the scoring defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Default number of embedding shards per table commit: a crash loses at most one such group.
SHARDS_PER_COMMIT = 8


@dataclass(frozen=True)
class HeadSpec:
    """A published LAION head."""

    name: str
    model: str
    dim: int
    filename: str
    url: str


_V1 = "https://github.com/LAION-AI/aesthetic-predictor/raw/main/"
_V2 = "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
HEADS: dict[str, HeadSpec] = {
    spec.name: spec
    for spec in (
        HeadSpec("laion-v1-l14", "ViT-L-14", 768, "sa_0_4_vit_l_14_linear.pth", _V1 + "sa_0_4_vit_l_14_linear.pth"),
        HeadSpec("laion-v1-b32", "ViT-B-32", 512, "sa_0_4_vit_b_32_linear.pth", _V1 + "sa_0_4_vit_b_32_linear.pth"),
        HeadSpec("laion-v1-b16", "ViT-B-16", 512, "sa_0_4_vit_b_16_linear.pth", _V1 + "sa_0_4_vit_b_16_linear.pth"),
        HeadSpec(
            "laion-v2-l14",
            "ViT-L-14",
            768,
            "sac+logos+ava1-l14-linearMSE.pth",
            _V2 + "sac%2Blogos%2Bava1-l14-linearMSE.pth",
        ),
    )
}

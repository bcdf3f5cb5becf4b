"""The whole pipeline on sample data, on one engine: what ``laion-spark demo`` runs.

Sample data, then :func:`~laion_spark.pipeline.runner.run_pipeline` over it with
the packaged ``pipeline.yaml`` rooted at the demo's folder: one code path with
``laion-spark pipeline``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..aesthetic.buckets import format_distribution
from ..aesthetic.distribution import read_score_distribution
from ..aesthetic.heads import HeadNotFoundError, load_head, resolve_head
from ..config_file import read_yaml
from ..engine.factory import open_session
from ..engine.session import LakeSession
from ..report.params import PAGE
from ..sample import generate_sample
from ..subsets.params import default_config_path
from .config import load_pipeline_config
from .runner import plan, plan_stages, run_pipeline
from .stages import StageContext

#: The published head the demo prefers.
DEMO_HEAD = "laion-v1-l14"


@dataclass
class DemoResult:
    """What the demo did: stage timings, the head used, and where every output is."""

    out: Path
    head: str
    head_kind: str
    stages: list[tuple[str, float]] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)
    distribution: str = ""

    def format(self) -> str:
        """The summary printed at the end of the demo."""
        lines = [f"head: {self.head} ({self.head_kind})", "", "stages:"]
        lines += [f"  {name:<34} {seconds:7.1f} s" for name, seconds in self.stages]
        lines += ["", f"total {sum(s for _, s in self.stages):.1f} s", "", "score distribution:", self.distribution]
        lines += ["", "outputs:"]
        width = max(len(name) for name in self.outputs) if self.outputs else 0
        lines += [f"  {name:<{width}}  {path}" for name, path in self.outputs.items()]
        return "\n".join(lines)


def choose_head(head: str | None) -> tuple[str | None, str]:
    """The head to shape and score the sample with, and how it was found.

    A given name or path wins; else LAION's ViT-L/14 head from the cache or its
    published location; else ``None``: the sample generator's synthetic head.
    """
    if head:
        path = resolve_head(head)
        return str(path), f"given: {path}"
    try:
        return str(resolve_head(DEMO_HEAD)), "LAION's published head"
    except HeadNotFoundError:
        return None, "synthetic: LAION's head was not found"


def _sample_matches(sample_dir: Path, rows: int, seed: int, head: str | None) -> bool:
    manifest = sample_dir / "sample.json"
    if not manifest.is_file():
        return False
    meta = json.loads(manifest.read_text())
    wanted_head = "synthetic" if head is None else str(Path(head).resolve())
    have_head = "synthetic" if meta["head"]["kind"] == "synthetic" else str(Path(meta["head"]["path"]).resolve())
    return meta["rows"] == rows and meta["seed"] == seed and have_head == wanted_head


def demo_config(out: Path, head: str, template: str | Path | None = None) -> Path:
    """Write ``out/pipeline.yaml``: the pipeline config (default: the packaged one) rooted at ``out``, scoring with
    ``head``. Returns its path; ``laion-spark pipeline --config`` that path reruns the demo's pipeline."""
    source = Path(template) if template is not None else default_config_path()
    data = read_yaml(source)
    data["pipeline"] = {**data.get("pipeline", {}), "root": str(out), "head": head}
    target = out / "pipeline.yaml"
    target.write_text(
        f"# Written by laion-spark demo from {source}; rerun with laion-spark pipeline --config {target}\n"
        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return target


def run_demo(
    out: str | Path,
    *,
    rows: int = 20_000,
    seed: int = 0,
    head: str | None = None,
    engine: str = "sail",
    lake: LakeSession | None = None,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Generate (or reuse) sample data under ``out/sample``, then run the pipeline over it into ``out``.

    The pipeline is :func:`~laion_spark.pipeline.runner.run_pipeline` with ``out/pipeline.yaml``
    (:func:`demo_config`): the same code path as ``laion-spark pipeline``; stages already complete for
    the same inputs are skipped on a rerun.
    """
    out = Path(out).resolve()
    sample_dir = out / "sample"
    head_path, head_kind = choose_head(head)
    result = DemoResult(out=out, head="", head_kind=head_kind)
    echo("-> sample data")
    started = time.perf_counter()
    if _sample_matches(sample_dir, rows, seed, head_path):
        echo(f"   reusing {sample_dir}")
    else:
        generate_sample(sample_dir, rows, seed, head=head_path, overwrite=(sample_dir / "sample.json").is_file())
    result.stages.append(("sample data", time.perf_counter() - started))
    manifest = json.loads((sample_dir / "sample.json").read_text())
    scoring_head = head_path or str(sample_dir / manifest["head"]["path"])
    config = load_pipeline_config(demo_config(out, scoring_head))
    result.head = load_head(scoring_head).name

    own_session = lake is None
    lake = lake or open_session(engine)
    try:
        ran = run_pipeline(lake, config, echo=echo)
        result.distribution = format_distribution(read_score_distribution(lake, config.pipeline.lake_dir))
    finally:
        if own_session:
            lake.stop()
    result.stages += [(f"{s.name} ({s.status})", s.seconds) for s in ran.stages]
    lake_dir = Path(config.pipeline.lake_dir)
    result.outputs = {
        "sample data": sample_dir,
        "pipeline config": out / "pipeline.yaml",
        "lake (Delta tables)": lake_dir,
        **{f"lake/{p.name}": p for p in sorted(lake_dir.iterdir()) if p.is_dir()},
    }
    for stage in plan(StageContext(lake, config, echo), plan_stages(config), check_inputs=False):
        files = [Path(p) for p in stage.outputs if not Path(p).is_relative_to(lake_dir)]
        result.outputs.update({str(p.relative_to(out)) if p.is_relative_to(out) else str(p): p for p in files})
    result.outputs["report"] = result.outputs["report"] / PAGE
    caption_map = result.outputs["report"].with_name("umap_map.html")
    if caption_map.is_file():
        result.outputs["caption map"] = caption_map
    return result

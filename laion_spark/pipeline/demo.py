"""The whole pipeline on sample data, on one engine: what ``laion-spark demo`` runs.

sample -> score-embeddings -> join-tags -> subsets -> score distribution ->
aesthetic embeddings -> KV files -> report. Each stage is the same library
function the individual commands and ``jobs/`` call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..aesthetic.bucket_embeddings import build_aesthetic_embeddings, export_aesthetic_embeddings
from ..aesthetic.distribution import build_score_distribution, format_distribution
from ..aesthetic.heads import HeadNotFoundError, load_head, resolve_head
from ..aesthetic.scoring import score_embeddings
from ..engine.factory import LakeSession, open_session
from ..ingest.job import join_tags
from ..kv.build import build_kv
from ..lake.collections import COLLECTIONS
from ..report.build import build_report
from ..sample import generate_sample
from ..subsets.build import build_subsets

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
        lines += [f"  {name:<28} {seconds:7.1f} s" for name, seconds in self.stages]
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
    """Generate (or reuse) sample data under ``out/sample`` and run every stage into ``out``."""
    out = Path(out).resolve()
    sample_dir, lake_dir = out / "sample", out / "lake"
    head_path, head_kind = choose_head(head)
    result = DemoResult(out=out, head="", head_kind=head_kind)

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        echo(f"-> {name}")
        started = time.perf_counter()
        yield
        result.stages.append((name, time.perf_counter() - started))

    with stage("sample data"):
        if _sample_matches(sample_dir, rows, seed, head_path):
            echo(f"   reusing {sample_dir}")
        else:
            generate_sample(sample_dir, rows, seed, head=head_path, overwrite=(sample_dir / "sample.json").is_file())
    manifest = json.loads((sample_dir / "sample.json").read_text())
    scoring_head = load_head(head_path or sample_dir / manifest["head"]["path"])
    result.head = scoring_head.name

    own_session = lake is None
    lake = lake or open_session(engine)
    try:
        with stage("score-embeddings"):
            for collection in COLLECTIONS:
                summary = score_embeddings(
                    lake, sample_dir / "embeddings" / collection, scoring_head, lake_dir, collection
                )
                echo(summary.format())
        with stage("join-tags"):
            for collection in COLLECTIONS:
                tags = sample_dir / "tags" / collection
                summary = join_tags(
                    lake,
                    sample_dir / "metadata" / collection,
                    collection,
                    lake_dir,
                    aesthetic_tags=lake_dir / "aesthetic_tags",
                    watermark_tags=tags / "watermark",
                    safety_tags=tags / "safety",
                    aesthetic_head=scoring_head.name,
                )
                echo(summary.format())
        with stage("subsets"):
            for summary in build_subsets(lake, lake_dir):
                echo(summary.format())
        with stage("score distribution"):
            result.distribution = format_distribution(build_score_distribution(lake, lake_dir))
        with stage("aesthetic embeddings"):
            embeddings = [sample_dir / "embeddings" / c for c in COLLECTIONS]
            build_aesthetic_embeddings(lake, embeddings, scoring_head, lake_dir)
            export_aesthetic_embeddings(lake, lake_dir, out / "aesthetic_embeddings", head=scoring_head.name)
        with stage("build-kv"):
            kv_dir = out / "kv"
            kv_dir.mkdir(parents=True, exist_ok=True)
            for name, table, columns, where in (
                ("aesthetic.kv", "aesthetic_tags", ["aesthetic"], f"head = '{scoring_head.name}'"),
                ("watermark_safety.kv", "joined", ["pwatermark", "punsafe"], None),
            ):
                target = kv_dir / name
                target.unlink(missing_ok=True)
                built = build_kv(
                    lake, lake_dir / table, target, columns, on_duplicate="max", where=where, lake_dir=lake_dir
                )
                echo(built.summary().format())
        with stage("report"):
            page = build_report(lake, lake_dir, out / "report")
    finally:
        if own_session:
            lake.stop()

    result.outputs = {
        "sample data": sample_dir,
        "lake (Delta tables)": lake_dir,
        **{f"lake/{p.name}": p for p in sorted(lake_dir.iterdir()) if p.is_dir()},
        "rating{N}.npy": out / "aesthetic_embeddings",
        "kv/aesthetic.kv": out / "kv" / "aesthetic.kv",
        "kv/watermark_safety.kv": out / "kv" / "watermark_safety.kv",
        "report": page,
    }
    return result

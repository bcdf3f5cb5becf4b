"""``laion-spark sample``: write deterministic LAION-shaped sample data (no Spark needed)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..sample.params import DEFAULT_SHARDS, MIN_ROWS


def summary_lines(out: Path, manifest: dict[str, object], seconds: float) -> list[str]:
    """A short human summary of a sample manifest: what was written where."""
    from ..sample import MANIFEST

    head = manifest["head"]
    lines = [
        f"sample: seed {manifest['seed']}, {manifest['rows']} metadata rows x {len(manifest['collections'])} "
        f"collections in {out} ({seconds:.1f} s)",
        f"head: {head['kind']} {head['name']} ({head['path']}), weight norm {head['weight_norm']:.2f}, "
        f"bias {head['bias']:.2f}",
        f"{'collection':<16}{'metadata':>10}{'embedded':>10}{'aesthetic':>11}{'watermark':>11}{'safety':>9}",
    ]
    for name, entry in manifest["collections"].items():
        tags = entry["tags"]
        lines.append(
            f"{name:<16}{entry['metadata']['rows']:>10}{entry['embeddings']['rows']:>10}"
            f"{tags['aesthetic']['rows']:>11}{tags['watermark']['rows']:>11}{tags['safety']['rows']:>9}"
        )
    web = manifest["webdataset"]
    lines += [
        "  metadata/<collection>/  tags/<collection>/<tag>/  embeddings/<collection>/{img_emb,metadata}/",
        f"  webdataset/: {len(web['tars'])} tars, {web['samples']} images (corrupt: {', '.join(web['corrupt_keys'])})",
        f"  manifest with the planted quirks' counts: {out / MANIFEST}",
    ]
    return lines


def register(app: typer.Typer) -> None:
    """Add ``sample`` to ``app``."""

    @app.command("sample")
    def sample(
        out: Path = typer.Option(..., "--out", "-o", help="Folder to write the sample into (new or empty)."),
        rows: int = typer.Option(
            20_000, "--rows", "-n", min=MIN_ROWS, help=f"Metadata rows per collection (>= {MIN_ROWS})."
        ),
        seed: int = typer.Option(
            0, "--seed", "-s", min=0, help="Random seed; the same seed gives byte-identical files."
        ),
        head: str | None = typer.Option(
            None, "--head", help="Head (.pth path or name) to shape the scores with; default: a synthetic head."
        ),
        shards: int = typer.Option(DEFAULT_SHARDS, "--shards", "-k", min=1, help="Embedding shards per collection."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a previous sample in --out."),
    ) -> None:
        """Write LAION-shaped raw metadata, tag tables, embedding shards and webdataset tars."""
        from ..sample import generate_sample

        started = time.perf_counter()
        manifest = generate_sample(out, rows, seed, head=head, shards=shards, overwrite=overwrite)
        for line in summary_lines(out, manifest, time.perf_counter() - started):
            typer.echo(line)

"""The report's PNG charts, drawn with matplotlib's object API (Agg canvas, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..aesthetic.buckets import PUBLISHED_2B_EN, UNIT_BUCKETS

#: Colours per series, picked in order (colour-blind friendly).
PALETTE = ("#3b6fb6", "#e08a2c", "#4a9e6b", "#b04a5a", "#7d62b5", "#8a8a8a")
_INK, _GRID = "#22262e", "#d9dce1"


def short_count(n: float) -> str:
    """``1234567 -> '1.23M'``, ``4321 -> '4.3K'``, ``42 -> '42'``."""
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return f"{int(n)}"


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(colors=_INK, labelsize=9)
    ax.grid(axis="y", color=_GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def distribution_chart(dist: pd.DataFrame, collection: str, path: Path, log_scale: bool = False) -> Path:
    """Bars of rows per score bucket of one collection (one series per head), LAION's shape overlaid.

    ``dist`` holds ``head, bucket, count`` rows of the collection (see ``score_distribution``).
    Buckets below 0 and from 10 up are drawn only when they hold rows.
    """
    counts = dist.pivot_table(index="bucket", columns="head", values="count", aggfunc="sum", fill_value=0)
    edges = [b for b in ("below_0", "10_and_above") if b in counts.index and counts.loc[b].sum() > 0]
    buckets = (["below_0"] if "below_0" in edges else []) + list(UNIT_BUCKETS)
    buckets += ["10_and_above"] if "10_and_above" in edges else []
    counts = counts.reindex(buckets, fill_value=0)
    heads = list(counts.columns)
    fig = Figure(figsize=(5.6, 3.3), dpi=130, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(buckets))
    width = 0.8 / max(len(heads), 1)
    for i, head in enumerate(heads):
        bars = ax.bar(
            x + (i - (len(heads) - 1) / 2) * width, counts[head], width, color=PALETTE[i % len(PALETTE)], label=head
        )
        ax.bar_label(bars, labels=[short_count(v) if v else "" for v in counts[head]], fontsize=7, color=_INK)
    scored = counts[heads[0]].reindex(UNIT_BUCKETS).sum() if heads else 0
    if scored:
        total = sum(PUBLISHED_2B_EN.values())
        shape = [PUBLISHED_2B_EN[b] / total * scored for b in UNIT_BUCKETS]
        ax.plot(
            [buckets.index(b) for b in UNIT_BUCKETS],
            shape,
            color=_INK,
            marker="o",
            markersize=3.5,
            linewidth=1.2,
            label="LAION 2B-en shape (scaled)",
        )
    if log_scale:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5)
    ax.set_xticks(x, [{"below_0": "<0", "10_and_above": "≥10"}.get(b, b) for b in buckets], fontsize=8)
    ax.set_xlabel("aesthetic score bucket", color=_INK)
    ax.set_ylabel("rows" + (" (log scale)" if log_scale else ""), color=_INK)
    ax.set_title(collection, loc="left", color=_INK, fontsize=11, fontweight="bold")
    _style(ax)
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    fig.savefig(path, format="png")
    return path


def funnel_chart(funnel: pd.DataFrame, stages: list[str], path: Path) -> Path:
    """Horizontal bars of rows per stage (top to bottom in ``stages`` order), stacked by collection."""
    table = funnel.pivot_table(index="stage", columns="collection", values="rows", aggfunc="sum", fill_value=0)
    table = table.reindex(stages, fill_value=0)
    fig = Figure(figsize=(8.4, 0.55 * len(stages) + 1.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(stages))
    left = np.zeros(len(stages))
    for i, collection in enumerate(table.columns):
        ax.barh(y, table[collection], left=left, color=PALETTE[i % len(PALETTE)], label=collection, height=0.62)
        left += table[collection].to_numpy()
    first = left[0] if len(left) and left[0] else 1
    for yi, total in zip(y, left, strict=True):
        ax.text(total, yi, f"  {short_count(total)}  ({total / first:.1%})", va="center", fontsize=8, color=_INK)
    ax.set_yticks(y, stages)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left.max(initial=0), 1) * 1.25)
    ax.set_xlabel("rows", color=_INK)
    _style(ax)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color=_GRID, linewidth=0.8)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.savefig(path, format="png")
    return path

"""Score buckets and LAION's published score distribution, and the distribution in LAION's printed form (nothing
heavy imported: the command line prints with it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Rows per unit score bucket of laion2B-en under the v1 ViT-L/14 head, as LAION published them
#: (laion2B-multi and laion1B-nolang have the same shape).
PUBLISHED_2B_EN: dict[str, float] = {
    "0-1": 2.66e6,
    "1-2": 25.62e6,
    "2-3": 147.55e6,
    "3-4": 410.18e6,
    "4-5": 656.38e6,
    "5-6": 601.73e6,
    "6-7": 271.19e6,
    "7-8": 51.43e6,
    "8-9": 3.35e6,
    "9-10": 0.05e6,
}
#: LAION's unit buckets in score order (bucket ``i`` is ``[i, i + 1)``).
UNIT_BUCKETS: tuple[str, ...] = tuple(PUBLISHED_2B_EN)
#: Every bucket of the ``score_distribution`` table, in ``bucket_order``.
BUCKETS = ("below_0", *UNIT_BUCKETS, "10_and_above", "missing")


def choose_unit(counts: Mapping[str, int]) -> tuple[str, float]:
    """LAION's ``M`` (millions) once a bucket reaches a million, ``K`` from a thousand, else plain counts."""
    largest = max(counts.values(), default=0)
    if largest >= 1_000_000:
        return "M", 1e6
    if largest >= 1_000:
        return "K", 1e3
    return "", 1.0


def laion_form(counts: Mapping[str, int], unit: tuple[str, float] | None = None) -> dict[str, str]:
    """``{'0-1': '2.66M', ...}`` over LAION's unit buckets, as LAION published its distribution."""
    unit_counts = {b: int(counts.get(b, 0)) for b in UNIT_BUCKETS}
    suffix, scale = unit or choose_unit(unit_counts)
    if not suffix:
        return {b: str(n) for b, n in unit_counts.items()}
    return {b: f"{n / scale:.2f}{suffix}" for b, n in unit_counts.items()}


def format_distribution(table: Any) -> str:
    """Text for ``laion-spark stats`` of a ``score_distribution`` table (pandas): per collection and head, LAION's
    form and the exact counts."""
    blocks = []
    for (collection, head), group in table.groupby(["collection", "head"], sort=True):
        counts = dict(zip(group["bucket"], group["count"].astype(int), strict=True))
        total = sum(counts.values())
        lines = [f"{collection}  head {head}  rows {total:,}", f"  {laion_form(counts)}"]
        width = max(len(b) for b in BUCKETS)
        for bucket in BUCKETS:
            share = counts.get(bucket, 0) / total if total else 0.0
            lines.append(f"  {bucket:<{width}}  {counts.get(bucket, 0):>14,}  {share:7.2%}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)

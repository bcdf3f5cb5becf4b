"""LAION's published aesthetic score distribution and helpers to draw from and compare with it."""

from __future__ import annotations

import numpy as np

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

#: Unit bucket names in score order (bucket ``i`` is ``[i, i + 1)``), as in ``laion_spark.aesthetic.distribution``.
UNIT_BUCKETS: tuple[str, ...] = tuple(PUBLISHED_2B_EN)


def published_proportions() -> np.ndarray:
    """Share of rows per bucket in LAION's published distribution (sums to 1)."""
    counts = np.array([PUBLISHED_2B_EN[b] for b in UNIT_BUCKETS], dtype=np.float64)
    return counts / counts.sum()


def bucket_quotas(rows: int) -> np.ndarray:
    """Rows per bucket for a sample of ``rows``: the published proportions, largest-remainder rounded."""
    exact = published_proportions() * rows
    quotas = np.floor(exact).astype(np.int64)
    short = rows - int(quotas.sum())
    quotas[np.argsort(-(exact - quotas), kind="stable")[:short]] += 1
    return quotas


def quota_counts(rows: int) -> dict[str, int]:
    """:func:`bucket_quotas` keyed by bucket name."""
    return dict(zip(UNIT_BUCKETS, bucket_quotas(rows).tolist(), strict=True))


def draw_target_scores(rng: np.random.Generator, rows: int) -> np.ndarray:
    """``rows`` target scores in random order: bucket sizes from :func:`bucket_quotas`, uniform inside a bucket."""
    scores = np.repeat(np.arange(len(UNIT_BUCKETS), dtype=np.float64), bucket_quotas(rows)) + rng.random(rows)
    return scores[rng.permutation(rows)]


def bucket_counts(scores: np.ndarray) -> dict[str, int]:
    """Rows of ``scores`` per unit bucket, plus ``below_0``, ``10_and_above`` and ``missing`` (NaN)."""
    scores = np.asarray(scores, dtype=np.float64)
    missing = np.isnan(scores)
    index = np.floor(np.where(missing, 0.0, scores))
    counts = {"below_0": int((index < 0).sum())}
    counts.update({name: int(((index == i) & ~missing).sum()) for i, name in enumerate(UNIT_BUCKETS)})
    counts["10_and_above"] = int((index >= len(UNIT_BUCKETS)).sum())
    counts["missing"] = int(missing.sum())
    return counts

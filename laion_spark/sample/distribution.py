"""Sample scores shaped like LAION's published aesthetic score distribution."""

from __future__ import annotations

import numpy as np

from ..aesthetic.buckets import PUBLISHED_2B_EN, UNIT_BUCKETS


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

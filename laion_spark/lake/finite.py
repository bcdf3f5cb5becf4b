"""One rule for non-finite values (NaN, +inf, -inf) wherever a score or a probability is read.

A score or a tag that is not a finite number is not a value: it is never ordered above (or preferred to) a real
number, it never passes a threshold or a safety filter, and every job that reads one counts it in its run
summary. Spark orders NaN above every number (``max`` of ``9.0`` and NaN is NaN) and ``+inf > 8`` is true, so
comparisons alone would let them through; these helpers say "finite" the same way on every engine.

Where the rule applies (and the count each run summary shows):

* ``join-tags``: a tag table's duplicates keep the largest *finite* value; a non-finite value is dropped like a
  null (``<tag>_non_finite_dropped``); a hash with no finite value gets a null tag.
* ``subsets``: a non-finite ``pwatermark`` or ``punsafe`` fails the safety filter (``non_finite_tags``, part of
  ``failed_safety``); a non-finite score passes no threshold (``non_finite_score``, part of ``missing_score``).
* ``stats``: a non-finite score falls in the ``missing`` bucket (``rows_non_finite_score``).
* ``build-kv``: the values are written as the table holds them (the format is LAION's), but among rows sharing
  a key a real number is always kept before a non-finite one (``rows_non_finite``).
* the UMAP renders and the caption map: a non-finite score is drawn unscored (``rows_non_finite_score`` of
  ``umap``), never with the top colour.
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F


def finite(column: Column) -> Column:
    """True for a finite number, false for NaN, an infinity and null (never null itself)."""
    return F.coalesce(F.abs(column) < F.lit(float("inf")), F.lit(False))  # NaN < inf is false in Spark


def non_finite(column: Column) -> Column:
    """True for NaN and the infinities, false for a finite number and for null."""
    return column.isNotNull() & ~finite(column)


def finite_or_null(column: Column) -> Column:
    """The value when finite, else null (what a job reads as "no value")."""
    return F.when(finite(column), column)


def finite_or_nan(values: np.ndarray) -> np.ndarray:
    """``values`` as floats with every non-finite value NaN (drawn, sorted and compared as "no value")."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)

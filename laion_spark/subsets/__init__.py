"""LAION-Aesthetics subsets: LAION's safety filter, then one table per aesthetic threshold.

Reads: ``joined``. Writes: one ``subset_<name>`` table per subset of the
pipeline config (``laion_art``, ``laion_aesthetic``, ``aesthetics_6plus`` ...),
and one run per subset (job ``subsets``, target the subset's table) to ``runs``.
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".build": [
            "SUBSET_COLUMNS",
            "SubsetError",
            "build_subsets",
            "passes_threshold",
            "safety_outcome",
            "subset_counts",
            "subset_frame",
        ]
    },
)

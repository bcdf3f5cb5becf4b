"""The run report: ``index.html`` with the score distributions, subset funnel, sample captions and runs.

Reads (each optional): ``score_distribution`` (or ``aesthetic_tags``), ``joined``,
``subset_<name>``, ``aesthetic_embeddings`` and ``runs``. Writes files only
(``index.html`` and its PNG charts) and the run to ``runs``. Modules: :mod:`.data`
(what the page shows), :mod:`.charts` (PNGs), :mod:`.html` (the page), :mod:`.build`.
"""

from .._lazy import lazy_exports

__all__ = ["build_report", "gather_report_data"]

__getattr__, __dir__ = lazy_exports(__name__, {".build": ["build_report"], ".data": ["gather_report_data"]}, __all__)

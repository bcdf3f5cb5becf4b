"""The run report: ``index.html`` with the score distributions, subset funnel, sample captions and runs.

Reads (each optional): ``score_distribution`` (or ``aesthetic_tags``), ``joined``,
``subset_<name>``, ``aesthetic_embeddings``, ``umap`` and ``runs``. Writes files only
(``index.html``, its PNG charts, ``umap_nn<k>.png`` and the caption map ``umap_map.html``)
and the run to ``runs``. Modules: :mod:`.data`
(what the page shows), :mod:`.charts` (PNGs), :mod:`.html` (the page), :mod:`.map` (the
UMAP map), :mod:`.assets` (the pages' CSS, JavaScript and HTML template: package data
files beside the modules), :mod:`.build`.
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {".build": ["build_report"], ".data": ["gather_report_data"]})

"""The UMAP hand-off: a deterministic sample of a subset, then CLIP text -> 64-d projection -> UMAP -> ``umap``.

Reads: ``subset_<name>`` (``sample-for-umap``), ``umap_sample`` (``umap``).
Writes: ``umap_sample``; ``umap`` (LAION's columns, then ``x_nn<k>, y_nn<k>`` per
n_neighbors); PNG renders and ``umap.json`` (backend and parameters) in a
folder beside the lake; one run each (jobs ``sample-for-umap`` and ``umap``) to ``runs``.
Modules: :mod:`.sample`, :mod:`.embed` (CLIP text), :mod:`.projection` (random
projection in the tasks), :mod:`.backends` (cuML / umap-learn behind one
parameter set), :mod:`.fit` (fit on the driver, transform in the tasks),
:mod:`.render` (datashader), :mod:`.job`, :mod:`.params` (light defaults).
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".errors": ["BackendUnavailableError", "UmapError"],
        ".embed": ["ClipTextEmbedder", "FunctionEmbedder"],
        ".backends": ["CumlBackend", "UmapLearnBackend", "UmapParams", "select_backend"],
        ".job": ["build_umap", "layout_sample"],
        ".params": ["SampleForUmap", "Umap"],
        ".projection": ["gaussian_projection", "project_frame"],
        ".render": ["render_layouts"],
        ".sample": ["sample_for_umap"],
    },
)

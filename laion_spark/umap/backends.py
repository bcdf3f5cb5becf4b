"""UMAP backends behind one parameter set: cuML on a GPU where it imports, else umap-learn on the CPU.

:class:`UmapParams` declares the parameters once; each backend maps them to
its own constructor and ``fit`` keywords (:meth:`Backend.options`), which are
logged and stored with the run. The GPU library is imported only inside the
backend's methods, so the same (picklable) backend object can travel to Spark
tasks and import cuML there.

umap-learn specifics: below :data:`~laion_spark.umap.params.EXACT_DISTANCES_BELOW_ROWS` fit rows it is given
every exact pairwise distance (``metric="precomputed"``) and its model travels with the fit rows, so that it
transforms new rows by their distances to them (:class:`ExactDistanceModel`); from there on, NN-descent.

cuML specifics (cuML has no float16 input; inputs are float32): RMM is switched
to managed memory once per process, and from
:data:`~laion_spark.umap.params.NN_DESCENT_MIN_ROWS` fit rows on the kNN graph is
built with ``build_algo="nn_descent"`` from host memory (``data_on_host=True``),
in ``nnd_n_clusters`` batches for the largest inputs.
"""

from __future__ import annotations

import abc
import importlib
import io
import logging
import pickle
import re
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import BackendUnavailableError, UmapError
from .params import (
    BACKENDS,
    DISTANCE_BLOCK,
    EXACT_DISTANCES_BELOW_ROWS,
    NN_DESCENT_CLUSTER_ROWS,
    NN_DESCENT_CLUSTERS,
    NN_DESCENT_MIN_ROWS,
    Umap,
)

_log = logging.getLogger("laion_spark.umap")


@dataclass(frozen=True)
class UmapParams:
    """One UMAP parameter set, declared once and mapped to each backend's keywords."""

    n_neighbors: int
    n_epochs: int = Umap.epochs
    negative_sample_rate: int = Umap.negative_sample_rate
    random_state: int | None = Umap.seed
    n_components: int = 2
    min_dist: float = 0.1
    metric: str = "euclidean"
    init: str = "spectral"

    def common(self) -> dict[str, Any]:
        """The parameters as the keywords both UMAP implementations share."""
        return asdict(self)


@dataclass(frozen=True)
class BackendOptions:
    """What a backend passes to its UMAP: constructor keywords and ``fit`` keywords."""

    constructor: dict[str, Any]
    fit: dict[str, Any] = field(default_factory=dict)
    #: With ``metric="precomputed"``: the metric of the exact distances the fit is given, else ``None``.
    distances: str | None = None

    def describe(self) -> str:
        """``n_neighbors=10 n_epochs=1000 ... | fit data_on_host=True``, for the log."""
        text = " ".join(f"{k}={v}" for k, v in self.constructor.items())
        if self.fit:
            text += " | fit " + " ".join(f"{k}={v}" for k, v in self.fit.items())
        if self.distances:
            text += f" | exact {self.distances} distances"
        return text

    def record(self) -> dict[str, Any]:
        """The options as stored with the run and beside each model file (``distances`` only when set)."""
        return {
            "constructor": self.constructor,
            "fit": self.fit,
            **({"distances": self.distances} if self.distances else {}),
        }


@dataclass
class FittedLayout:
    """One fit: the 2-D coordinates of the fit rows and the pickled model that transforms new rows."""

    n_neighbors: int
    embedding: np.ndarray
    model: bytes
    options: BackendOptions
    seconds: float
    #: Width of the features the model was fitted on.
    width: int


class Backend(abc.ABC):
    """A UMAP implementation: :meth:`options` maps :class:`UmapParams`, :meth:`fit` and :meth:`transform` run it."""

    name = ""
    module = ""

    def version(self) -> str:
        """The library's version string."""
        return str(getattr(importlib.import_module(self.module), "__version__", "unknown"))

    @abc.abstractmethod
    def options(self, params: UmapParams, rows: int) -> BackendOptions:
        """The keywords this backend gives its UMAP for ``params`` and ``rows`` fit rows."""

    def fit(self, features: np.ndarray, params: UmapParams) -> FittedLayout:
        """Fit ``features`` (float32, C order) with ``params``; log the options and the epochs."""
        if len(features) <= params.n_neighbors:
            raise UmapError(f"UMAP with n_neighbors={params.n_neighbors} needs more than {len(features)} fit rows")
        options = self.options(params, len(features))
        _log.info(
            "umap nn%d: %s %s on %d rows: %s",
            params.n_neighbors,
            self.name,
            self.version(),
            len(features),
            options.describe(),
        )
        started = time.perf_counter()
        model, embedding = self._fit(np.ascontiguousarray(features, dtype=np.float32), options, params)
        seconds = time.perf_counter() - started
        _log.info("umap nn%d: fitted in %.1f s", params.n_neighbors, seconds)
        blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        return FittedLayout(
            params.n_neighbors, np.asarray(embedding, dtype=np.float32), blob, options, seconds, features.shape[1]
        )

    @abc.abstractmethod
    def _fit(self, features: np.ndarray, options: BackendOptions, params: UmapParams) -> tuple[Any, np.ndarray]:
        """``(model, embedding)`` of one fit with ``options``."""

    def transform(self, model: Any, features: np.ndarray) -> np.ndarray:
        """2-D coordinates of new rows under a fitted ``model`` (float32)."""
        return np.asarray(model.transform(np.ascontiguousarray(features, dtype=np.float32)), dtype=np.float32)


class _EpochLog(io.TextIOBase):
    """A file for tqdm: each progress line it draws becomes one INFO log line."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label, self.last = label, ""

    def write(self, text: str) -> int:
        for part in re.split(r"[\r\n]+", text):
            line = part.strip()
            if line and line != self.last:
                self.last = line
                _log.info("umap %s: %s", self.label, line)
        return len(text)


@dataclass(frozen=True)
class UmapLearnBackend(Backend):
    """umap-learn on the CPU (numba); its epochs are logged through tqdm."""

    name = "umap-learn"
    module = "umap"
    #: Seconds between two epoch log lines.
    progress_seconds: float = 10.0

    #: Fit rows below which the fit gets every exact pairwise distance instead of NN-descent's graph.
    exact_below: int = EXACT_DISTANCES_BELOW_ROWS

    def options(self, params: UmapParams, rows: int) -> BackendOptions:
        # umap-learn runs single-threaded whenever random_state is set (it warns and overrides n_jobs).
        constructor = {**params.common(), "n_jobs": 1 if params.random_state is not None else -1}
        if rows < self.exact_below:
            return BackendOptions({**constructor, "metric": "precomputed"}, distances=params.metric)
        # NN-descent from exact_below on, also where umap-learn's own switch (4,096 rows) would not yet take it.
        return BackendOptions({**constructor, "force_approximation_algorithm": True})

    def _fit(self, features: np.ndarray, options: BackendOptions, params: UmapParams) -> tuple[Any, np.ndarray]:
        import umap

        progress = {
            "disable": False,
            "file": _EpochLog(f"nn{params.n_neighbors}"),
            "mininterval": self.progress_seconds,
            "bar_format": "{n_fmt}/{total_fmt} epochs",
            "ascii": True,
        }
        model = umap.UMAP(**options.constructor, tqdm_kwds=progress)
        fitted: Any = model
        if options.distances:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "using precomputed metric", UserWarning)
                embedding = model.fit_transform(pairwise_distances(features, features, options.distances))
            fitted = ExactDistanceModel(model, features, options.distances)
        else:
            embedding = model.fit_transform(features)
        model.tqdm_kwds = {"disable": True}  # the log file stays behind: the pickled model transforms quietly
        return fitted, embedding


def pairwise_distances(rows: np.ndarray, fit_rows: np.ndarray, metric: str) -> np.ndarray:
    """Every distance from ``rows`` to ``fit_rows`` under ``metric`` (scikit-learn's vectorised kernels), float32."""
    from sklearn.metrics import pairwise_distances as sklearn_pairwise

    return np.asarray(sklearn_pairwise(rows, fit_rows, metric=metric), dtype=np.float32)


class ExactDistanceModel:
    """A umap-learn model fitted on exact distances, with the fit rows: it transforms new rows by their distances to
    them, :data:`~laion_spark.umap.params.DISTANCE_BLOCK` distances at a time."""

    def __init__(self, model: Any, fit_rows: np.ndarray, metric: str) -> None:
        # umap-learn keeps the fit's whole distance matrix (64 MiB at 4,095 rows); its transform reads only the
        # matrix's row count, so the pickled model keeps that and the fit rows instead.
        model._raw_data = np.empty((len(fit_rows), 0), dtype=np.float32)
        self.model, self.fit_rows, self.metric = model, fit_rows, metric

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """2-D coordinates of ``rows`` (float32, the fit's width)."""
        block = max(1, DISTANCE_BLOCK // len(self.fit_rows))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Transforming new data with precomputed metric", UserWarning)
            return np.concatenate(
                [
                    self.model.transform(pairwise_distances(rows[at : at + block], self.fit_rows, self.metric))
                    for at in range(0, len(rows), block)
                ]
            )


_rmm_lock = threading.Lock()
_rmm_managed = False


def use_managed_memory() -> None:
    """Switch RMM (cuML's allocator) to CUDA managed memory, once per process."""
    global _rmm_managed
    with _rmm_lock:
        if _rmm_managed:
            return
        import rmm

        rmm.reinitialize(managed_memory=True)
        _rmm_managed = True


@dataclass(frozen=True)
class CumlBackend(Backend):
    """cuML's GPU UMAP with RMM managed memory; NN-descent from host memory for large inputs."""

    name = "cuml"
    module = "cuml"
    nn_descent_rows: int = NN_DESCENT_MIN_ROWS
    cluster_rows: int = NN_DESCENT_CLUSTER_ROWS
    clusters: int = NN_DESCENT_CLUSTERS

    def options(self, params: UmapParams, rows: int) -> BackendOptions:
        constructor: dict[str, Any] = {**params.common(), "output_type": "numpy"}
        if rows < self.nn_descent_rows:
            return BackendOptions({**constructor, "build_algo": "brute_force_knn"})
        constructor["build_algo"] = "nn_descent"
        if rows >= self.cluster_rows:
            constructor["build_kwds"] = {"nnd_n_clusters": self.clusters}
        return BackendOptions(constructor, {"data_on_host": True})

    def _fit(self, features: np.ndarray, options: BackendOptions, params: UmapParams) -> tuple[Any, np.ndarray]:
        use_managed_memory()
        from cuml.manifold import UMAP

        model = UMAP(**options.constructor)
        model.fit(features, **options.fit)
        return model, np.asarray(model.embedding_)

    def transform(self, model: Any, features: np.ndarray) -> np.ndarray:
        use_managed_memory()
        return super().transform(model, features)


def _importable(module: str) -> str | None:
    """``None`` when ``module`` imports, else why not (one line)."""
    try:
        importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - a GPU library fails to import in many ways (no driver, no CUDA)
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    return None


def select_backend(name: str = "auto") -> Backend:
    """The backend ``name`` (``auto``, ``cuml``, ``umap-learn``); ``auto`` is cuML where it imports, else umap-learn.

    ``auto`` logs a warning naming why cuML was not used. Raises
    :class:`UmapError` for an unknown name and :class:`BackendUnavailableError`
    when the backend asked for (for ``auto``: umap-learn) does not import.
    """
    if name not in BACKENDS:
        raise UmapError(f"UMAP backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if name in ("auto", "cuml"):
        why = _importable("cuml.manifold")
        if why is None:
            return CumlBackend()
        if name == "cuml":
            raise BackendUnavailableError(f"cuML does not import here ({why}); install the gpu extra or use umap-learn")
        _log.warning("cuML does not import here (%s): UMAP falls back to umap-learn on the CPU", why)
    why = _importable("umap")
    if why is not None:
        raise BackendUnavailableError(f"umap-learn does not import ({why}): pip install umap-learn")
    return UmapLearnBackend()

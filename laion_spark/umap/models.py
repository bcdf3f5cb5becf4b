"""Fitted UMAP models as files under the lake: written once on the driver, loaded by path in the transform tasks.

A Spark Connect plan travels as one gRPC message (about 128 MiB), so models carried inside a task closure bounded
the fit to about 35k rows. Here the driver writes each fitted model to ``<lake>/_umap_models/`` (``nn<k>-<digest>
.pkl``, named by the SHA-256 of its bytes, beside ``nn<k>-<digest>.json`` with its parameters), and the transform
tasks receive only ``(n_neighbors, path, digest)``: each Python process reads a file once (the lake is storage
every executor reaches: a local folder on one machine, ``s3://``, a Unity Catalog volume), checks its digest and
keeps it, and each thread unpickles its own model once (Sail runs tasks as threads of one process; classic Spark
one task at a time per reused Python worker), as the CLIP model is loaded once per worker.

Runs on the driver: :func:`save_models`, :func:`prune_models`. Runs in the tasks: :func:`load_model` and the
``mapInArrow`` function of :func:`transform_with_files`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
from pyspark.sql import DataFrame

from ..lake.layout import is_local, lake_table
from .backends import Backend, FittedLayout
from .errors import UmapError
from .params import coordinate_columns
from .projection import rows_matrix

_log = logging.getLogger("laion_spark.umap")
#: The folder of the lake that holds the fitted models (a leading ``_``: no table, no view).
MODELS_FOLDER = "_umap_models"
#: Rows per call of a model's ``transform`` inside a task.
TRANSFORM_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class ModelFile:
    """One fitted model on shared storage: what a transform task needs to load and check it."""

    n_neighbors: int
    path: str
    sha256: str
    size: int


def _fs(path: str) -> tuple[pafs.FileSystem, str]:
    return (pafs.LocalFileSystem(), path) if is_local(path) else pafs.FileSystem.from_uri(path)


def models_folder(lake_dir: str | Path) -> str:
    """``<lake_dir>/_umap_models`` (a local path or a URI)."""
    return lake_table(lake_dir, MODELS_FOLDER)


def save_models(
    lake_dir: str | Path, layouts: Sequence[FittedLayout], backend: Backend, fit_rows: int
) -> list[ModelFile]:
    """Write each layout's pickled model (and its parameters) under the lake; return what the tasks need.

    A file is named by its content's digest, so a rerun of the same fit writes nothing new, and it appears whole
    (written under a temporary name, then moved).
    """
    folder = models_folder(lake_dir)
    fs, where = _fs(folder)
    fs.create_dir(where, recursive=True)
    files = []
    for layout in layouts:
        digest = hashlib.sha256(layout.model).hexdigest()
        stem = f"{where}/nn{layout.n_neighbors}-{digest[:16]}"
        manifest = {
            "n_neighbors": layout.n_neighbors,
            "sha256": digest,
            "bytes": len(layout.model),
            "width": layout.width,
            "fit_rows": fit_rows,
            "backend": {"name": backend.name, "version": backend.version()},
            **layout.options.record(),
        }
        if fs.get_file_info(f"{stem}.pkl").type != pafs.FileType.File:
            _write(fs, f"{stem}.pkl", layout.model)
        _write(fs, f"{stem}.json", (json.dumps(manifest, indent=2, default=str) + "\n").encode())
        path = f"{stem}.pkl" if is_local(folder) else _uri(folder, f"{stem}.pkl")
        files.append(ModelFile(layout.n_neighbors, path, digest, len(layout.model)))
        _log.info("umap nn%d: model of %.1f MB written to %s", layout.n_neighbors, len(layout.model) / 2**20, path)
    return files


def _uri(folder: str, path: str) -> str:
    """The URI of ``path`` (a path inside the filesystem of the URI ``folder``)."""
    scheme = folder.split("://", 1)[0]
    return f"{scheme}://{path}"


def _read(path: str) -> bytes:
    if is_local(path):
        return Path(path).read_bytes()
    fs, where = _fs(path)
    with fs.open_input_stream(where) as stream:
        return stream.read()


def _write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    staging = f"{path}.{uuid.uuid4().hex}.tmp"
    with fs.open_output_stream(staging) as out:
        out.write(data)
    fs.move(staging, path)


def prune_models(lake_dir: str | Path, keep: Sequence[ModelFile]) -> None:
    """Remove the model files (and their parameters) of earlier runs: only ``keep`` stays."""
    fs, where = _fs(models_folder(lake_dir))
    kept = {Path(_fs(f.path)[1]).stem for f in keep}
    for info in fs.get_file_info(pafs.FileSelector(where, allow_not_found=True)):
        if info.type == pafs.FileType.File and Path(info.base_name).stem.split(".")[0] not in kept:
            fs.delete_file(info.path)


_lock = threading.Lock()
_bytes: dict[tuple[str, str], bytes] = {}
#: Unpickled models by (path, digest, thread): a thread runs one task at a time, so no model is used by two
#: tasks at once. (Not ``threading.local``: Sail's task threads are native ones, whose Python thread states come
#: and go between calls, and a model freed with one crashed the server.)
_models: dict[tuple[str, str, int], Any] = {}
#: Model files a process keeps at hand (a run's layouts, not every run's), and unpickled models.
KEEP_MODELS = 6
KEEP_UNPICKLED = 24


def _keep(cache: dict, key: tuple, value: Any, most: int = KEEP_MODELS) -> None:
    while len(cache) >= most:
        cache.pop(next(iter(cache)))
    cache[key] = value


def load_model(file: ModelFile) -> Any:
    """The model in ``file``: its bytes read once per process and checked against the digest, unpickled once per
    thread that runs tasks. Raises :class:`UmapError` naming the file when it is missing or changed."""
    key = (file.path, file.sha256)
    mine = (*key, threading.get_ident())
    with _lock:
        model = _models.get(mine)
    if model is None:
        with _lock:
            if key not in _bytes:
                try:
                    data = _read(file.path)
                except OSError as err:
                    raise UmapError(f"{file.path}: the fitted model cannot be read in the task ({err})") from None
                if hashlib.sha256(data).hexdigest() != file.sha256:
                    raise UmapError(f"{file.path}: the fitted model changed after the fit (digest differs)")
                _keep(_bytes, key, data)
                _log.info("umap nn%d: model of %.1f MB loaded from %s", file.n_neighbors, len(data) / 2**20, file.path)
            data = _bytes[key]
        model = pickle.loads(data)
        with _lock:
            _keep(_models, mine, model, KEEP_UNPICKLED)
    return model


def _transform_batches(
    backend: Backend, files: list[ModelFile], features: str, width: int
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """``mapInArrow`` function: a partition's ``features`` -> its coordinates under every fitted model."""
    described = [asdict(f) for f in files]  # plain data in the closure: no model bytes

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        held = [b for b in batches if b.num_rows]
        if not held:
            return
        table = pa.Table.from_batches(held)
        rows, _ = rows_matrix(table.column(features), width)
        kept = table.drop_columns([features])
        for entry in described:
            file = ModelFile(**entry)
            model = load_model(file)
            coords = np.concatenate(
                [
                    backend.transform(model, rows[at : at + TRANSFORM_CHUNK_ROWS])
                    for at in range(0, len(rows), TRANSFORM_CHUNK_ROWS)
                ]
            )
            x, y = coordinate_columns([file.n_neighbors])
            kept = kept.append_column(x, pa.array(coords[:, 0], pa.float32()))
            kept = kept.append_column(y, pa.array(coords[:, 1], pa.float32()))
        _log.info("umap transform: %d rows of one partition done", len(rows))
        yield from kept.to_batches(max_chunksize=TRANSFORM_CHUNK_ROWS)

    return run


def transform_with_files(
    frame: DataFrame, files: Sequence[ModelFile], backend: Backend, width: int, features: str = "features"
) -> DataFrame:
    """``frame`` with ``features`` (non-null ``width``-d rows) replaced by each model's transformed coordinates;
    the models are loaded from ``files`` in the tasks."""
    from .fit import transformed_schema

    schema = transformed_schema(frame.schema, features, [f.n_neighbors for f in files])
    return frame.mapInArrow(_transform_batches(backend, list(files), features, width), schema)

"""Torch state dict files read without torch: an aesthetic head is two small tensors, and importing torch to read
them cost every fresh ``score-embeddings`` 2.6 s of its 5.0 s at 1M rows (cProfile, the 2-core VM).

What is read: the zip archive ``torch.save`` writes since torch 1.6 (``<folder>/data.pkl``, ``<folder>/data/<key>``,
``<folder>/byteorder``), holding a pickle of dicts (``collections.OrderedDict`` too) of CPU or GPU tensors rebuilt by
``torch._utils._rebuild_tensor_v2`` from float32, float64, float16 or bfloat16 storages. As
``torch.load(weights_only=True)``, the unpickler builds nothing else. A file in any other form (torch's legacy
format, other dtypes, other classes) is not read here: :func:`read_state_dict` says so, and the caller loads it with
torch, which reads it or refuses it.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

#: The storage classes read, by the name the pickle gives them, with the dtype of their bytes (bfloat16 as its bits).
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(np.uint16),
}


class _NotRead(Exception):
    """The file is not in the form this module reads."""


class _StorageType(str):
    """A storage class named in the pickle (``FloatStorage`` ...)."""


def read_state_dict(path: str | Path) -> dict[str, Any] | None:
    """The state dict saved at ``path`` with its tensors as numpy arrays (float32, float64, float16; bfloat16 as
    float32, which holds it exactly), or ``None`` when the file is not a ``torch.save`` zip archive of such a dict (or
    cannot be read): load it with torch then. Raises nothing."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            pickles = [name for name in names if name.count("/") == 1 and name.endswith("/data.pkl")]
            if len(pickles) != 1:
                return None
            folder = pickles[0].rsplit("/", 1)[0]
            order = archive.read(f"{folder}/byteorder").decode() if f"{folder}/byteorder" in names else "little"
            if order not in ("little", "big"):
                return None
            with archive.open(pickles[0]) as pickled:
                state = _Unpickler(pickled, archive, folder, "<" if order == "little" else ">").load()
    except Exception:  # noqa: BLE001 - a damaged zip or pickle raises many types; torch then reads or refuses it
        return None
    if not (isinstance(state, dict) and all(isinstance(key, str) for key in state)):
        return None
    return dict(state)


class _Unpickler(pickle.Unpickler):
    """Unpickles a state dict, taking each storage from ``archive``'s ``<folder>/data/<key>`` once, however many
    tensors view it."""

    def __init__(self, file: Any, archive: zipfile.ZipFile, folder: str, byte_order: str) -> None:
        super().__init__(file)
        self._archive, self._folder, self._byte_order = archive, folder, byte_order
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise _NotRead(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind, storage_type, key, _location, numel = pid  # the device does not matter: the bytes are read
        if kind != "storage" or not isinstance(storage_type, _StorageType) or not isinstance(numel, int):
            raise _NotRead(repr(pid))
        if key not in self._storages:
            self._storages[key] = self._read_storage(storage_type, str(key), numel)
        return self._storages[key]

    def _read_storage(self, storage_type: _StorageType, key: str, numel: int) -> np.ndarray:
        """Storage ``key``'s ``numel`` values in native byte order (bfloat16 widened to float32)."""
        dtype = _STORAGE_DTYPES[storage_type].newbyteorder(self._byte_order)
        data = self._archive.read(f"{self._folder}/data/{key}")
        if len(data) != numel * dtype.itemsize:
            raise _NotRead(f"storage {key}: {len(data)} bytes for {numel} values")
        values = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))
        return (values.astype(np.uint32) << 16).view(np.float32) if storage_type == "BFloat16Storage" else values


def _rebuild_tensor(
    storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_flags: Any
) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2``: the ``size``-shaped view of ``storage`` from ``offset`` by ``stride``,
    copied; a view reaching outside the storage, or holding more values than it (a broadcast), is not read."""
    shape, steps = tuple(size), tuple(stride)
    if not (isinstance(storage, np.ndarray) and isinstance(offset, int) and len(shape) == len(steps)):
        raise _NotRead("tensor")
    if not all(isinstance(v, int) and v >= 0 for v in (offset, *shape, *steps)):
        raise _NotRead("tensor")
    if 0 in shape:
        return np.zeros(shape, dtype=storage.dtype)
    last = offset + sum((n - 1) * step for n, step in zip(shape, steps, strict=True))
    if last >= storage.size or np.prod(shape, dtype=np.float64) > storage.size:  # the copy stays within the file's size
        raise _NotRead("tensor")
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=shape, strides=[step * storage.itemsize for step in steps], writeable=False
    )
    return view.copy()

"""Lazy package exports: a package's public names are imported on first use.

Every stage package says which of its modules defines each public name; its
``__all__`` is derived from that, and nothing heavy (pyspark, numba, torch,
matplotlib) is imported until a name is used. This is what lets
``laion-spark --help`` answer without loading an engine::

    __all__, __getattr__, __dir__ = exports(__name__, {".build": ["build_kv", ...], ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence


def exports(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``.

    ``modules`` maps a submodule (``".build"``) to the public names it defines. The returned
    ``__getattr__`` imports the submodule on first use of a name and raises ``AttributeError``
    for any name not listed.
    """
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return sorted(where), __getattr__, __dir__

"""Lazy package exports: a package's public names are imported on first use.

Every stage package lists its public names in ``__all__`` and says which of its
modules defines each; nothing heavy (pyspark, numba, torch, matplotlib) is
imported until a name is used. This is what lets ``laion-spark --help`` answer
without loading an engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence


def lazy_exports(
    package: str, modules: Mapping[str, Sequence[str]], public: Sequence[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``.

    ``modules`` maps a submodule (``".build"``) to the public names it defines;
    ``public`` is the package's ``__all__``, which must list exactly those names
    (a ``ValueError`` otherwise, so that the two cannot drift apart). The
    returned ``__getattr__`` raises ``AttributeError`` for any other name.
    """
    where = {name: module for module, names in modules.items() for name in names}
    if sorted(where) != sorted(public):
        raise ValueError(f"{package}: __all__ and the lazy exports differ: {sorted(set(where) ^ set(public))}")

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__

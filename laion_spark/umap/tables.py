"""Guards for the UMAP stage's tables, which are rewritten whole on every run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..lake.tables import read_table, table_exists
from .errors import UmapError

if TYPE_CHECKING:
    from ..engine.session import LakeSession


def check_columns_unchanged(lake: LakeSession, path: str | Path, columns: Sequence[str]) -> None:
    """Refuse to overwrite ``path`` with other columns than it has (Sail's overwrite drops new columns silently).

    Raises :class:`UmapError` naming both column lists; nothing when there is no table yet.
    """
    if not table_exists(lake, path):
        return
    old = read_table(lake, path).columns
    if list(old) != list(columns):
        raise UmapError(
            f"{path}: the existing table has columns {old} but this run writes {list(columns)}; "
            "remove the table folder to rebuild it with the new columns"
        )

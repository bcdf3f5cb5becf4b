"""Subset layouts shared by the subsets, the UMAP hand-off and the CLI (nothing heavy imported)."""

from __future__ import annotations

#: LAION's published subset columns, in order (``improved_aesthetics_*``, laion-aesthetics-12m-umap).
PUBLISHED_COLUMNS = ("URL", "TEXT", "WIDTH", "HEIGHT", "similarity", "punsafe", "pwatermark", "AESTHETIC_SCORE", "hash")
#: The kind of each published column (see :data:`laion_spark.lake.KINDS`).
PUBLISHED_KINDS = {
    column: {"URL": "string", "TEXT": "string", "WIDTH": "integer", "HEIGHT": "integer", "hash": "integer"}.get(
        column, "floating"
    )
    for column in PUBLISHED_COLUMNS
}

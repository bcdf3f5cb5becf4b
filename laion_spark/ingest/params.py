"""Ingest parameters shared by the CLI, the pipeline config and the job (no engine imported)."""

from __future__ import annotations

#: Whether to swap raw LAION's WIDTH and HEIGHT back: ``auto`` does it for raw metadata (no ``hash`` column).
SWAP_CHOICES = ("auto", "yes", "no")

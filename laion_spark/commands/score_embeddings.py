"""Placeholder until the owning change lands; replaced by the real command module."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing to add yet."""

"""The ``laion-spark`` command line: one module per stage's commands, options declared once.

Importing it loads typer and nothing heavy: each command imports its stage
(pyspark, numba, torch ...) only when it runs.
"""

from .app import app, quick_exit, run

__all__ = ["app", "quick_exit", "run"]

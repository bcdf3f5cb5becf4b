"""``python -m laion_spark`` is the ``laion-spark`` command."""

from .cli import run

run()

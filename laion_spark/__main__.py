"""``python -m laion_spark`` is the ``laion-spark`` command."""

from .cli import app

app(prog_name="laion-spark")

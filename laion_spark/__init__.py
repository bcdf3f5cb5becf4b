"""laion-spark: LAION-Aesthetics-style datasets built with Spark."""

__version__ = "0.1.0"

"""The session a job runs on: a Spark Connect-compatible ``SparkSession`` and the lake's table format.

Light on purpose (nothing imported at run time, nothing read): every job annotates with :class:`LakeSession`;
only :func:`laion_spark.engine.open_session` makes one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class LakeSession:
    """A Spark session and the format its lake tables are written in."""

    spark: SparkSession
    engine: str
    table_format: str
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    #: Settings asked for that the engine did not apply (reported as a warning when the session opened).
    unapplied: dict[str, str] = field(default_factory=dict)
    #: Delta table features the engine writes (:mod:`~laion_spark.engine.features`); ``None``: not known here
    #: (a Spark Connect server of any kind, Databricks), the engine refuses on its own.
    delta_writer_features: frozenset[str] | None = None

    def stop(self) -> None:
        """Stop the session and, for ``sail``, the embedded server. Idempotent."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass

    def __enter__(self) -> LakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

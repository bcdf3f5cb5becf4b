"""The engine a job runs on: the one session factory, Spark profiles, the pinned JVM jars, and CPU slots for tasks
that one engine runs as threads of this process.

Reads and writes no lake table (``doctor``'s check, which round-trips a scratch table, is in :mod:`laion_spark.lake`).
Only :func:`open_session` decides which engine sits behind a
:class:`LakeSession`: ``sail`` (in-process LakeSail, the default), ``local``
(classic ``local[*]``), ``remote`` (``sc://``) or ``active`` (spark-submit,
Databricks). Nothing here imports pyspark until a name is used.
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".factory": ["open_session"],
        ".session": ["LakeSession"],
        ".jars": ["delta_coordinate", "pinned"],
        ".names": ["ENGINES", "TABLE_FORMATS"],
        ".profiles": ["EngineError", "conf_dir", "read_profile", "resolve_conf"],
    },
)

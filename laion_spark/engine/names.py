"""The engines the session factory knows and the lake table formats (no engine imported here)."""

from __future__ import annotations

#: ``sail`` in-process LakeSail, ``local`` classic ``local[*]``, ``remote`` ``sc://``, ``active`` spark-submit/Databricks.
ENGINES = ("sail", "local", "remote", "active")
#: ``delta`` everywhere it is available; ``parquet`` for classic Spark without the Delta jars.
TABLE_FORMATS = ("delta", "parquet")

"""spark-submit entry point of ``laion-spark build-kv`` (same options).

    spark-submit --properties-file conf/cluster.conf jobs/build_kv.py \\
        --table s3://.../lake/joined --value-columns pwatermark,punsafe --value-format ee \\
        --out /data/kv/watermark_safety.kv --staging s3://.../scratch/kv_staging

The KV file is written on the driver (``--out`` is a driver-local path); the
staging table of a multi-range build must be reachable by every executor.
Without ``--engine`` the job runs on the session spark-submit (or Databricks)
gives it: ``--engine active``.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from laion_spark.cli import app


def main(argv: list[str] | None = None) -> None:
    """Run ``build-kv`` with ``argv``; the engine defaults to the surrounding job's session."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("--engine", "-e") or a.startswith("--engine=") for a in args):
        if "--help" not in args:
            SparkSession.builder.appName("laion-spark build-kv").getOrCreate()
        args = ["--engine", "active", *args]
    app(["build-kv", *args], prog_name="build_kv.py")


if __name__ == "__main__":
    main()

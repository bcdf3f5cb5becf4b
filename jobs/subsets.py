"""spark-submit entry point of ``laion-spark subsets`` (same options).

    spark-submit --properties-file conf/cluster.conf --py-files dist/laion_spark.zip jobs/subsets.py \\
        --lake s3://.../lake --config conf/pipeline.yaml

Reads ``<lake>/joined`` and rewrites ``<lake>/subset_<name>`` for every subset of the
pipeline config. Without ``--engine`` the job runs on the session spark-submit (or
Databricks) gives it: ``--engine active``.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from laion_spark.cli import app


def main(argv: list[str] | None = None) -> None:
    """Run ``subsets`` with ``argv``; the engine defaults to the surrounding job's session."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("--engine", "-e") or a.startswith("--engine=") for a in args):
        if "--help" not in args:
            SparkSession.builder.appName("laion-spark subsets").getOrCreate()
        args = ["--engine", "active", *args]
    app(["subsets", *args], prog_name="subsets.py")


if __name__ == "__main__":
    main()

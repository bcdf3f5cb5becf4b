"""spark-submit entry point of ``laion-spark join-tags`` (same options).

    spark-submit --py-files dist/laion_spark.zip jobs/join_tags.py \\
        --metadata s3://.../laion2B-en --collection laion2B-en --lake s3://.../lake \\
        --aesthetic-tags ... --watermark-tags ... --safety-tags ...

Without ``--engine`` the job runs on the session spark-submit (or Databricks)
gives it: ``--engine active``.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from laion_spark.cli import app


def main(argv: list[str] | None = None) -> None:
    """Run ``join-tags`` with ``argv``; the engine defaults to the surrounding job's session."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("--engine", "-e") or a.startswith("--engine=") for a in args):
        if "--help" not in args:
            SparkSession.builder.appName("laion-spark join-tags").getOrCreate()
        args = ["--engine", "active", *args]
    app(["join-tags", *args], prog_name="join_tags.py")


if __name__ == "__main__":
    main()

"""spark-submit entry point of ``laion-spark score-embeddings``.

    spark-submit --properties-file conf/cluster.conf jobs/score_embeddings.py \\
        --embeddings /data/embeddings/laion2B-en --head laion-v2-l14 --lake /data/lake

Takes the options of ``laion-spark score-embeddings`` and runs on the session
spark-submit (or a Databricks job) provides: engine ``active``.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from laion_spark.cli import app


def main(argv: list[str]) -> None:
    """Attach to (or create) the job's Spark session, then run the command on it."""
    SparkSession.builder.appName("laion-spark score-embeddings").getOrCreate()
    app(["score-embeddings", "--engine", "active", *argv], prog_name="score_embeddings.py")


if __name__ == "__main__":
    main(sys.argv[1:])

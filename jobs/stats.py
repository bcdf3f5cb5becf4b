"""spark-submit entry point of ``laion-spark stats`` (same options).

    spark-submit --properties-file conf/cluster.conf --py-files dist/laion_spark.zip jobs/stats.py \\
        --lake s3://.../lake

Rewrites <lake>/score_distribution from <lake>/aesthetic_tags. Without ``--engine`` the job runs on the session spark-submit (or a Databricks job) gives it:
``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("stats")

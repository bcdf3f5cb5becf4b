"""spark-submit entry point of ``laion-spark report`` (same options).

    spark-submit --properties-file conf/cluster.conf --py-files dist/laion_spark.zip jobs/report.py \\
        --lake /data/lake --out /data/report

Writes the run report of a lake (index.html and its charts). Without ``--engine`` the job runs on the session spark-submit (or a Databricks job) gives it:
``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("report")

"""spark-submit entry point of ``laion-spark pipeline`` (same options).

    spark-submit --properties-file conf/cluster.conf --py-files dist/laion_spark.zip jobs/pipeline.py \\
        --config pipeline.yaml --root /data

Every configured stage of the pipeline YAML, in order, resuming where a run stopped. Without ``--engine`` the job runs on the session spark-submit (or a Databricks job) gives it:
``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("pipeline")

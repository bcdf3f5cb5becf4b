"""spark-submit entry point of ``laion-spark subsets`` (same options).

    spark-submit --properties-file conf/cluster.conf --py-files dist/laion_spark.zip jobs/subsets.py \\
        --lake s3://.../lake --config conf/pipeline.yaml

Reads ``<lake>/joined`` and rewrites ``<lake>/subset_<name>`` for every subset of the
pipeline config. Without ``--engine`` the job runs on the session spark-submit (or
Databricks) gives it: ``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("subsets")

"""spark-submit entry point of ``laion-spark aesthetic-embeddings`` (same options).

    spark-submit --properties-file conf/cluster.conf --py-files dist/laion_spark.zip jobs/aesthetic_embeddings.py \\
        --embeddings /data/embeddings/laion2B-en --head laion-v1-l14 --lake s3://.../lake

Bucket-mean embeddings of the shards into <lake>/aesthetic_embeddings. Without ``--engine`` the job runs on the session spark-submit (or a Databricks job) gives it:
``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("aesthetic-embeddings")

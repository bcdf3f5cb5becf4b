"""spark-submit entry point of ``laion-spark build-kv`` (same options).

    spark-submit --properties-file conf/cluster.conf jobs/build_kv.py \\
        --table s3://.../lake/joined --value-columns pwatermark,punsafe --value-format ee \\
        --out /shared/kv/watermark_safety.kv --staging /shared/scratch/kv_staging

Executors sort their key ranges and write them as fragment files under
``--staging``, which must be a filesystem folder shared by the executors and the
driver (NFS, a FUSE-mounted bucket, DBFS's /dbfs); the driver concatenates the
fragments into ``--out``.
Without ``--engine`` the job runs on the session spark-submit (or Databricks)
gives it: ``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("build-kv")

"""spark-submit entry point of ``laion-spark build-kv`` (same options).

    spark-submit --properties-file conf/cluster.conf jobs/build_kv.py \\
        --table s3://.../lake/joined --value-columns pwatermark,punsafe --value-format ee \\
        --out /data/kv/watermark_safety.kv --staging s3://.../scratch/kv_staging

The KV file is written on the driver (``--out`` is a driver-local path); the
staging table of a multi-range build must be reachable by every executor.
Without ``--engine`` the job runs on the session spark-submit (or Databricks)
gives it: ``--engine active``.
"""

from laion_spark.entrypoint import run_job

if __name__ == "__main__":
    run_job("build-kv")

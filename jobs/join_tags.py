"""spark-submit entry point of ``laion-spark join-tags`` (same options).

    spark-submit --py-files dist/laion_spark.zip jobs/join_tags.py \\
        --metadata s3://.../laion2B-en --collection laion2B-en --lake s3://.../lake \\
        --aesthetic-tags ... --watermark-tags ... --safety-tags ...

Without ``--engine`` the job runs on the session spark-submit (or Databricks)
gives it: ``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("join-tags")

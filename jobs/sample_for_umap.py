"""spark-submit entry point of ``laion-spark sample-for-umap`` (same options).

    spark-submit --properties-file conf/rapids.conf --py-files dist/laion_spark.zip jobs/sample_for_umap.py \\
        --lake /data/lake --subset aesthetics_6plus --rows 12000000 --seed 0

A seeded sample of a subset into <lake>/umap_sample, the hand-off to the UMAP job. Without ``--engine`` the job runs on the session spark-submit (or a Databricks job) gives it:
``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("sample-for-umap")

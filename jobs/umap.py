"""spark-submit entry point of ``laion-spark umap`` (same options).

    spark-submit --properties-file conf/rapids.conf --py-files dist/laion_spark.zip jobs/umap.py \\
        --lake /data/lake --model ViT-B-32:openai --fit-rows 30000

CLIP text -> 64-d random projection -> UMAP per n_neighbors into <lake>/umap. Without ``--engine`` the job runs on the session spark-submit (or a Databricks job) gives it:
``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("umap")

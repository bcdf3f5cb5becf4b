"""spark-submit entry point of ``laion-spark embed-text`` (same options).

    spark-submit --properties-file conf/rapids.conf --py-files dist/laion_spark.zip jobs/embed_text.py \\
        --table /data/lake/umap_sample --column TEXT --model ViT-B-32:openai --out /data/lake/text_embeddings

CLIP text embeddings of a table's captions, written as a table. Without ``--engine`` the job runs on the session spark-submit (or a Databricks job) gives it:
``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("embed-text")

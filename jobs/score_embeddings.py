"""spark-submit entry point of ``laion-spark score-embeddings``.

    spark-submit --properties-file conf/cluster.conf jobs/score_embeddings.py \\
        --embeddings /data/embeddings/laion2B-en --head laion-v2-l14 --lake /data/lake

Takes the options of ``laion-spark score-embeddings`` and runs on the session
spark-submit (or a Databricks job) provides: engine ``active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("score-embeddings")

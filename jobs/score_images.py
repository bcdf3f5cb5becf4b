"""spark-submit entry point of ``laion-spark score-images`` (same options).

    spark-submit --properties-file conf/rapids.conf --py-files dist/laion_spark.zip jobs/score_images.py \\
        --shards 's3mnt/laion/*.tar' --model ViT-L-14:openai --head laion-v1-l14 --lake /data/lake

Embeds and scores the images of webdataset tars with a CLIP model (one task per tar, resumable). Without ``--engine`` the job runs on the session spark-submit (or a Databricks job) gives it:
``--engine active``.
"""

from laion_spark.cli.entrypoint import run_job

if __name__ == "__main__":
    run_job("score-images")

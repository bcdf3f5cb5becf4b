"""CLIP inference in Spark: webdataset images and captions -> embeddings -> aesthetic scores.

Reads: webdataset tar shards (``KEY.jpg|png|webp`` + ``KEY.txt`` + ``KEY.json``, as img2dataset writes
them, with img2dataset's per-shard ``.parquet`` and ``_stats.json`` when they are there) and any lake table
with a caption column (``embed_text``).
Writes: ``image_aesthetic_tags``, ``image_errors`` and ``image_tars`` (``score_images``), embedding
shards in the parquet_npy layout (``img_emb/img_emb_XXXX.npy`` + ``metadata/metadata_XXXX.parquet``),
the ``embed_text`` output table; every job appends its run to ``runs``.

Modules, one role each: ``model`` (spec, tiny architecture, process-wide cache), ``device`` (which
GPU), ``batching`` (inference batches, OOM back-off), ``reader`` (tars), ``listing`` (img2dataset's
per-shard parquet), ``decode`` (PIL threads or GPU JPEG), ``text`` (dynamic padding,
``embed_text_frame``), ``images`` (one tar inside a task), ``writer`` (atomic files, embedding numbers),
``progress`` (INFO lines), ``job`` (the jobs), ``params`` (light defaults).
"""

from .._lazy import exports

__all__, __getattr__, __dir__ = exports(
    __name__,
    {
        ".params": ["IMAGE_ERRORS_TABLE", "IMAGE_TAGS_TABLE", "IMAGE_TARS_TABLE", "TINY_MODEL"],
        ".model": ["ClipModel", "ModelSpec", "ModelSpecError", "load_model", "model_loads"],
        ".device": ["precision_for", "select_device"],
        ".batching": ["InferenceBatches"],
        ".text": ["embed_text_frame", "encode_captions"],
        ".job": ["ImageScoreSummary", "ShardsError", "embed_text", "score_images"],
    },
)

"""CLIP-stage parameters shared by the CLI, the pipeline config and the jobs (no torch, numpy or engine imported)."""

from __future__ import annotations

#: The project's own open_clip architecture: small, random-initialised, for tests and the demo (see model.py).
TINY_MODEL = "laion-spark-tiny"
#: Width of the tiny architecture's image and text embeddings (= ViT-L/14's, so the L/14 heads apply to its
#: shapes; its scores mean nothing: the weights are random).
TINY_EMBED_DIM = 768
#: Width of the tiny architecture's text transformer (the ``pooled`` text embedding's width).
TINY_TEXT_WIDTH = 64

#: Text embedding modes: ``pooled`` is ln_final at the end-of-text token before the projection (what
#: ``CLIPTextModel.pooler_output`` gives, as the published UMAP pipeline used); ``projected`` is the CLIP
#: text embedding, L2-normalised.
TEXT_MODES = ("pooled", "projected")
DEFAULT_TEXT_MODE = "pooled"

#: Images per model forward (independent of the Arrow batch size); halved on a CUDA out-of-memory error.
IMAGE_BATCH = 256
#: Captions per model forward, each batch padded to its longest caption.
TEXT_BATCH = 512
#: Captions of one partition sorted by token length together (then restored to input order).
TEXT_WINDOW = 65_536
#: Tars per lake commit in ``score-images``: a crash loses at most one such group.
TARS_PER_COMMIT = 4
#: Seconds one image may take to decode and preprocess before it is failed as ``decode timed out``.
DECODE_TIMEOUT_S = 30.0
#: Decoder threads per task (0: one per CPU core, at most 16).
DECODE_THREADS = 0
#: The ``source`` recorded with image scores.
SOURCE_IMAGES = "images"

#: Lake tables written by ``score-images``.
IMAGE_TAGS_TABLE = "image_aesthetic_tags"
IMAGE_ERRORS_TABLE = "image_errors"
IMAGE_TARS_TABLE = "image_tars"

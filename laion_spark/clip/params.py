"""The CLIP stages' declarations (``score-images``, ``embed-text``) and their constants (no torch, numpy or engine
imported)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..aesthetic.params import HEAD_HELP
from ..lake.layout import lake_table
from ..stage import FROM_HEAD, FROM_LAKE, Stage, param

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

#: Captions per model forward, each batch padded to its longest caption.
TEXT_BATCH = 512
#: Captions of one partition sorted by token length together (then restored to input order).
TEXT_WINDOW = 65_536
#: Seconds one image may take to decode and preprocess before it is failed as ``decode timed out``.
DECODE_TIMEOUT_S = 30.0
#: The ``source`` recorded with image scores.
SOURCE_IMAGES = "images"

#: Lake tables written by ``score-images``.
IMAGE_TAGS_TABLE = "image_aesthetic_tags"
IMAGE_ERRORS_TABLE = "image_errors"
IMAGE_TARS_TABLE = "image_tars"

MODEL_HELP = (
    "open_clip architecture and weights: ARCH:TAG (e.g. ViT-L-14:openai, downloaded once into open_clip's cache), "
    f"ARCH:/path/to/checkpoint.pt, ARCH:random, or {TINY_MODEL} (tiny, random weights: tests and demo)."
)


@dataclass(frozen=True, kw_only=True)
class ScoreImages(Stage):
    """Embed the images of webdataset tars with CLIP and score them with an aesthetic head.

    One Spark task per tar reads it, decodes its images (threads, or the GPU's JPEG decoder) with the
    model's preprocessing, embeds them on the task's GPU (else the CPU) and scores them. Scores go to
    LAKE/image_aesthetic_tags (hash of url + caption, with img2dataset's url, caption, key, original size as
    WIDTH/HEIGHT, sha256, status and additional columns, the model and source=images), samples that cannot
    be embedded (truncated, empty or undecodable image, missing caption, unknown member) to LAKE/image_errors
    with their error. When img2dataset's NNNNN.parquet lies beside a tar, every URL it lists is accounted for:
    the ones img2dataset failed go to image_errors with its status and error message. --write-embeddings also
    writes the parquet_npy shards (clip-retrieval's metadata columns) that score-embeddings reads. A tar is
    its path, size and modification time: rerunning skips finished tars (every tar is scored once) and
    refuses a finished tar changed on disk, unless --force.
    """

    command: ClassVar[str] = "score-images"
    job: ClassVar[str] = "laion_spark.clip.job:score_images"
    resources: ClassVar[str] = "gpu"

    shards: str = param(help="Glob of webdataset tars, e.g. 'shards/*.tar'.", path=True)
    model: str = param(help=MODEL_HELP)
    head: str = param(help=f"{HEAD_HELP} Its width must be the model's.", pipeline=FROM_HEAD)
    lake: str = param(help="Lake folder; writes image_aesthetic_tags, image_errors, image_tars.", path=True,
                      pipeline=FROM_LAKE)  # fmt: skip
    write_embeddings: str | None = param(
        None,
        help=(
            "Folder for the embeddings: img_emb/img_emb_XXXX.npy + metadata/ per tar, XXXX a number the folder "
            "gives each tar, model and collection (other runs' files are never overwritten)."
        ),
        path=True,
    )
    collection: str | None = param(None, help="Collection name; default: the tars' folder name.")
    batch_size: int = param(256, help="Images per model forward (halved on CUDA out of memory).", minimum=1)
    tars_per_commit: int = param(4, help="Tars per lake commit: a crash loses at most one group.", minimum=1)
    threads: int = param(0, help="Decoder threads per task (0: one per core, at most 16).", minimum=0)
    decode_timeout: float = param(
        DECODE_TIMEOUT_S, help="Seconds an image may take to decode before it fails.", above=0
    )
    gpu_decode: bool = param(
        True, help="Decode JPEGs with the GPU's decoder (nvJPEG) when the model runs on a GPU; else PIL threads."
    )
    force: bool = param(
        False,
        help=(
            "Score the given tars again even when finished (or changed on disk since), replacing exactly their "
            "rows in the three tables (Delta lakes)."
        ),
    )

    def inputs(self) -> list[str]:
        """The tars' glob and the head."""
        return [self.shards, self.head]

    def outputs(self) -> list[str]:
        """The three tables, and the embedding shards' folder when asked for."""
        tables = [lake_table(self.lake, t) for t in (IMAGE_TAGS_TABLE, IMAGE_ERRORS_TABLE, IMAGE_TARS_TABLE)]
        return [*tables, *([self.write_embeddings] if self.write_embeddings else [])]


@dataclass(frozen=True, kw_only=True)
class EmbedText(Stage):
    """Embed a caption column with CLIP's text tower into a new table (array<float>, null for a null caption).

    Captions are grouped by token count inside each partition and every batch is padded to its longest
    caption only (equal to the full 77-token encoding within 1e-5 in fp32); rows keep their order. The run
    is recorded in the runs table of the lake holding --table.
    """

    command: ClassVar[str] = "embed-text"
    job: ClassVar[str] = "laion_spark.clip.job:embed_text"
    resources: ClassVar[str] = "gpu"

    table: str = param(help="Lake table holding the captions.", table=True)
    column: str = param(help="Caption column, e.g. TEXT.")
    model: str = param(help=MODEL_HELP)
    out: str = param(help="Output table: the input's columns plus the embedding.", table=True)
    mode: str = param(
        DEFAULT_TEXT_MODE,
        help=(
            "pooled: ln_final at the end-of-text token before the projection (CLIPTextModel.pooler_output, as the "
            f"published UMAP pipeline used; {TINY_TEXT_WIDTH}-d for {TINY_MODEL}, 512-d for ViT-B-32); "
            "projected: the CLIP text embedding, L2-normalised."
        ),
        choices=TEXT_MODES,
    )
    batch_size: int = param(TEXT_BATCH, help="Captions per forward, each padded to its longest.", minimum=1)
    output: str = param("embedding", help="Name of the embedding column.", flags=("--output-column",))

    def inputs(self) -> list[str]:
        """The caption table."""
        return [self.table]

    def outputs(self) -> list[str]:
        """The output table."""
        return [self.out]

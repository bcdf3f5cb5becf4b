"""The aesthetic stages' declarations, their tables, and the published LAION heads (no engine or numpy imported).

The published heads: name -> CLIP model, width, file and where it is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..lake.layout import collection_name_problem, lake_table
from ..stage import FROM_COLLECTION, FROM_HEAD, FROM_LAKE, ParamError, Stage, param
from .buckets import format_distribution

#: The lake tables of the aesthetic stages.
TAGS_TABLE = "aesthetic_tags"
REJECTED_TABLE = "aesthetic_tags_rejected"
DISTRIBUTION_TABLE = "score_distribution"
EMBEDDINGS_TABLE = "aesthetic_embeddings"


@dataclass(frozen=True)
class HeadSpec:
    """A published LAION head."""

    name: str
    model: str
    dim: int
    filename: str
    url: str


_V1 = "https://github.com/LAION-AI/aesthetic-predictor/raw/main/"
_V2 = "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
HEADS: dict[str, HeadSpec] = {
    spec.name: spec
    for spec in (
        HeadSpec("laion-v1-l14", "ViT-L-14", 768, "sa_0_4_vit_l_14_linear.pth", _V1 + "sa_0_4_vit_l_14_linear.pth"),
        HeadSpec("laion-v1-b32", "ViT-B-32", 512, "sa_0_4_vit_b_32_linear.pth", _V1 + "sa_0_4_vit_b_32_linear.pth"),
        HeadSpec("laion-v1-b16", "ViT-B-16", 512, "sa_0_4_vit_b_16_linear.pth", _V1 + "sa_0_4_vit_b_16_linear.pth"),
        HeadSpec(
            "laion-v2-l14",
            "ViT-L-14",
            768,
            "sac+logos+ava1-l14-linearMSE.pth",
            _V2 + "sac%2Blogos%2Bava1-l14-linearMSE.pth",
        ),
    )
}

_BY_FILENAME = {spec.filename: spec for spec in HEADS.values()}


def head_name(name_or_path: str) -> str:
    """The name a head goes by in the lake's ``head`` columns: a published head's name (``laion-v1-l14``), also for
    a file named like a published one (``sa_0_4_vit_l_14_linear.pth``); any other file's stem."""
    if name_or_path in HEADS:
        return name_or_path
    file = Path(name_or_path).name
    spec = _BY_FILENAME.get(file)
    return spec.name if spec is not None else Path(file).stem


HEAD_HELP = f"Head name ({', '.join(HEADS)}) or path of a .pth state dict."
LAKE_HELP = "Lake folder holding the tables (joined, aesthetic_tags ...)."
EMBEDDINGS_HELP = "Folder in LAION's parquet_npy layout: img_emb/img_emb_XXXX.npy + metadata/metadata_XXXX.parquet."


@dataclass(frozen=True, kw_only=True)
class ScoreEmbeddings(Stage):
    """Score precomputed CLIP image embeddings into LAKE/aesthetic_tags (hash, aesthetic, collection, shard, head).

    One Spark task per shard memory-maps its .npy, scores it with the head and hashes url + caption (LAION's
    hash). Shards already scored with the same head are skipped, so rerunning after a crash completes the run
    with each shard once. Rows with NaN/inf or all-zero embeddings go to LAKE/aesthetic_tags_rejected with
    their reason. A shard whose .npy and metadata row counts differ, or whose width is not the head's, is
    refused before anything is written (exit 2), unless --skip-refused.
    """

    command: ClassVar[str] = "score-embeddings"
    job: ClassVar[str] = "laion_spark.aesthetic.scoring:score_embeddings"

    embeddings: str = param(help=EMBEDDINGS_HELP, path=True, pipeline=FROM_COLLECTION)
    head: str = param(help=HEAD_HELP, pipeline=FROM_HEAD)
    lake: str = param(help="Lake folder; writes aesthetic_tags there.", path=True, pipeline=FROM_LAKE)
    collection: str | None = param(
        None, help="Collection name; default: the embeddings folder's name.", pipeline=FROM_COLLECTION
    )
    overwrite: bool = param(False, help="Rescore every shard and replace this head + collection's rows (else resume).")
    shards_per_commit: int = param(8, help="Shards per table commit: a crash loses at most one such group.", minimum=1)
    skip_refused: bool = param(
        False, help="Score the good shards when some are refused (counted as rows_refused) instead of refusing the run."
    )

    def check(self) -> None:
        """A collection given names a partition."""
        problem = None if self.collection is None else collection_name_problem(self.collection)
        if problem is not None:
            raise ParamError("collection", problem)

    def inputs(self) -> list[str]:
        """The shards' folder and the head."""
        return [self.embeddings, self.head]

    def outputs(self) -> list[str]:
        """The scores and the quarantined rows."""
        return [lake_table(self.lake, TAGS_TABLE), lake_table(self.lake, REJECTED_TABLE)]


@dataclass(frozen=True, kw_only=True)
class ScoreDistribution(Stage):
    """Rewrite the score_distribution table from aesthetic_tags and print it in LAION's form."""

    command: ClassVar[str] = "stats"
    job: ClassVar[str] = "laion_spark.aesthetic.distribution:build_score_distribution"

    lake: str = param(help=LAKE_HELP, path=True, pipeline=FROM_LAKE)

    def summarize(self, result: object) -> str:
        """The distribution in LAION's form and exact counts (a pandas table)."""
        return format_distribution(result) if not result.empty else f"{TAGS_TABLE} holds no rows"

    def inputs(self) -> list[str]:
        """The scores."""
        return [lake_table(self.lake, TAGS_TABLE)]

    def outputs(self) -> list[str]:
        """The distribution table."""
        return [lake_table(self.lake, DISTRIBUTION_TABLE)]


@dataclass(frozen=True, kw_only=True)
class AestheticEmbeddings(Stage):
    """Average the normalised embeddings per integer score bucket 0..9 into aesthetic_embeddings.

    With --export, also write LAION's rating{N}.npy files of this head there.
    """

    command: ClassVar[str] = "aesthetic-embeddings"
    job: ClassVar[str] = "laion_spark.aesthetic.bucket_embeddings:build_aesthetic_embeddings"

    embeddings: tuple[str, ...] = param(
        help="parquet_npy embedding folder; repeatable.", path=True, pipeline=FROM_COLLECTION
    )
    head: str = param(help=HEAD_HELP, pipeline=FROM_HEAD)
    lake: str = param(help=LAKE_HELP, path=True, pipeline=FROM_LAKE)
    export: str | None = param(None, help="Folder for rating0.npy ... rating9.npy of this head.", path=True)

    def summarize(self, result: object) -> str:
        """The run summary, and where the rating files went."""
        exported = f"\n  rating{{N}}.npy files written to {self.export}" if self.export else ""
        return result.format() + exported

    def inputs(self) -> list[str]:
        """The shards' folders and the head."""
        return [*self.embeddings, self.head]

    def outputs(self) -> list[str]:
        """The bucket means, and the rating files' folder when asked for."""
        return [lake_table(self.lake, EMBEDDINGS_TABLE), *([self.export] if self.export else [])]


@dataclass(frozen=True, kw_only=True)
class ExportAestheticEmbeddings(Stage):
    """Write LAION-style rating{N}.npy files (float32, shape (1, d)) from aesthetic_embeddings."""

    command: ClassVar[str] = "export-aesthetic-embeddings"
    job: ClassVar[str] = "laion_spark.aesthetic.bucket_embeddings:export_aesthetic_embeddings"

    lake: str = param(help=LAKE_HELP, path=True, pipeline=FROM_LAKE)
    out: str = param(help="Folder for rating0.npy ... rating9.npy.", path=True)
    head: str | None = param(None, help="Head whose rows to export (needed when several).", pipeline=FROM_HEAD)

    def summarize(self, result: object) -> str:
        """The files written (``{bucket: path}``), and the empty buckets."""
        lines = [f"wrote {len(result)} files to {self.out}: {', '.join(p.name for p in result.values())}"]
        empty = [f"rating{b}" for b in range(10) if b not in result]
        if empty:
            lines.append(f"  no rows in bucket(s) {', '.join(empty)}: not written")
        return "\n".join(lines)

    def inputs(self) -> list[str]:
        """The bucket means."""
        return [lake_table(self.lake, EMBEDDINGS_TABLE)]

    def outputs(self) -> list[str]:
        """The rating files' folder."""
        return [self.out]

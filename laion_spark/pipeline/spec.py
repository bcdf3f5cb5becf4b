"""The ``pipeline:`` section of ``pipeline.yaml``: where each stage reads and writes, and its parameters.

::

    pipeline:
      root: .                     # relative paths below are relative to it (``--root`` overrides)
      lake: lake
      head: laion-v1-l14          # name or .pth path: score, images' default, aesthetic embeddings, join
      collections:
        laion2B-en:
          metadata: sample/metadata/laion2B-en
          embeddings: sample/embeddings/laion2B-en
          watermark_tags: sample/tags/laion2B-en/watermark
          safety_tags: sample/tags/laion2B-en/safety
      stages:                     # a stage runs when it is listed here
        score: {shards_per_commit: 8}
        join: {aesthetic_tags: lake}
        ...

Every key is checked when the file is loaded; an error names its path
(``pipeline.stages.kv.files[1].table: missing required key``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..ingest.params import SWAP_CHOICES
from ..kv.params import DEFAULT_MAX_ROWS_PER_RANGE, ON_DUPLICATE
from ..lake.collections import COLLECTIONS
from .params import STAGE_ORDER
from .validate import PipelineConfigError, flag, integer, mapping, strings, text


@dataclass(frozen=True)
class CollectionInputs:
    """The input files of one collection (each optional: a stage uses the ones it needs)."""

    name: str
    metadata: str | None = None
    embeddings: str | None = None
    watermark_tags: str | None = None
    safety_tags: str | None = None


@dataclass(frozen=True)
class ScoreStage:
    """``score``: score-embeddings of every collection with ``embeddings``."""

    shards_per_commit: int = 8
    skip_refused: bool = False


@dataclass(frozen=True)
class ImagesStage:
    """``images``: score-images over webdataset tars with a CLIP model."""

    shards: str
    model: str
    head: str | None = None
    collection: str = COLLECTIONS[0]
    write_embeddings: str | None = None
    batch_size: int = 64


@dataclass(frozen=True)
class JoinStage:
    """``join``: join-tags of every collection with ``metadata``.

    ``aesthetic_tags``: ``lake`` (the lake's own ``aesthetic_tags``, of ``head``), a path, or null.
    """

    aesthetic_tags: str | None = "lake"
    swap_width_height: str = "auto"


@dataclass(frozen=True)
class AestheticEmbeddingsStage:
    """``aesthetic_embeddings``: bucket means of every collection's embeddings, exported to ``export``."""

    export: str | None = "aesthetic_embeddings"


@dataclass(frozen=True)
class KVFile:
    """One KV file of the ``kv`` stage."""

    name: str
    table: str
    value_columns: tuple[str, ...]
    value_format: str | None = None
    where: str | None = None
    on_duplicate: str = "max"
    max_rows_per_range: int = DEFAULT_MAX_ROWS_PER_RANGE


@dataclass(frozen=True)
class KVStage:
    """``kv``: build-kv of each file into the ``out`` folder."""

    out: str = "kv"
    files: tuple[KVFile, ...] = ()


@dataclass(frozen=True)
class UmapSampleStage:
    """``umap_sample``: sample-for-umap of ``subset``."""

    subset: str
    rows: int
    seed: int = 0


@dataclass(frozen=True)
class UmapStage:
    """``umap``: text embeddings of the sample, random projection, UMAP per n_neighbors."""

    model: str
    neighbors: tuple[int, ...] = (10, 30, 60)
    epochs: int = 1000
    negative_sample_rate: int = 20
    dim: int = 64
    seed: int = 0
    fit_rows: int | None = None
    mode: str = "pooled"
    renders: str = "umap"


@dataclass(frozen=True)
class ReportStage:
    """``report``: the run report into ``out``."""

    out: str = "report"
    samples: int = 3
    log_scale: bool = False


@dataclass(frozen=True)
class PipelineSpec:
    """The parsed ``pipeline:`` section; :meth:`path` resolves a path of it against ``root``."""

    root: str = "."
    lake: str = "lake"
    head: str | None = None
    collections: tuple[CollectionInputs, ...] = ()
    stages: Mapping[str, object] = field(default_factory=dict)

    def path(self, value: str) -> str:
        """``value`` against ``root`` (URIs and absolute paths as they are); a string, local paths absolute."""
        if "://" in value or value.startswith("dbfs:"):
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (Path(self.root).expanduser() / path).absolute())

    @property
    def lake_dir(self) -> str:
        """The lake folder."""
        return self.path(self.lake)


_STAGE_KEYS = {
    "score": ({"shards_per_commit", "skip_refused"}, set()),
    "images": ({"head", "collection", "write_embeddings", "batch_size"}, {"shards", "model"}),
    "join": ({"aesthetic_tags", "swap_width_height"}, set()),
    "subsets": (set(), set()),
    "stats": (set(), set()),
    "aesthetic_embeddings": ({"export"}, set()),
    "kv": ({"out"}, {"files"}),
    "umap_sample": ({"seed"}, {"subset", "rows"}),
    "umap": (
        {"neighbors", "epochs", "negative_sample_rate", "dim", "seed", "fit_rows", "mode", "renders"},
        {"model"},
    ),
    "report": ({"out", "samples", "log_scale"}, set()),
}


def parse_pipeline_spec(data: object) -> PipelineSpec:
    """Validate the ``pipeline:`` mapping and build the :class:`PipelineSpec`; raises :class:`PipelineConfigError`."""
    top = mapping(data, "pipeline", optional={"root", "lake", "head", "collections", "stages"})
    collections = _collections(top.get("collections") or {})
    raw_stages = mapping(top.get("stages") or {}, "pipeline.stages", optional=set(STAGE_ORDER))
    stages = {name: _stage(name, raw_stages[name]) for name in STAGE_ORDER if name in raw_stages}
    head = top.get("head")
    if head is not None:
        text(head, "pipeline.head")
    needs_head = [name for name in ("score", "aesthetic_embeddings") if name in stages]
    if needs_head and head is None:
        raise PipelineConfigError(f"pipeline.head: missing required key (stage {needs_head[0]} scores with it)")
    return PipelineSpec(
        root=text(top.get("root", "."), "pipeline.root"),
        lake=text(top.get("lake", "lake"), "pipeline.lake"),
        head=head,
        collections=collections,
        stages=stages,
    )


def _collections(data: object) -> tuple[CollectionInputs, ...]:
    raw = mapping(data, "pipeline.collections", optional=set(COLLECTIONS))
    inputs = []
    for name, entry in raw.items():
        where = f"pipeline.collections.{name}"
        item = mapping(entry, where, optional={"metadata", "embeddings", "watermark_tags", "safety_tags"})
        paths = {key: text(value, f"{where}.{key}") for key, value in item.items() if value is not None}
        inputs.append(CollectionInputs(name=name, **paths))
    return tuple(inputs)


def _optional_text(item: Mapping, key: str, where: str, default: str | None) -> str | None:
    value = item.get(key, default)
    return None if value is None else text(value, f"{where}.{key}")


def _stage(name: str, data: object) -> object:
    where = f"pipeline.stages.{name}"
    optional, required = _STAGE_KEYS[name]
    item = mapping(data or {}, where, required=required, optional=optional)
    if name == "score":
        return ScoreStage(
            shards_per_commit=integer(item.get("shards_per_commit", 8), f"{where}.shards_per_commit", minimum=1),
            skip_refused=flag(item.get("skip_refused", False), f"{where}.skip_refused"),
        )
    if name == "images":
        return ImagesStage(
            shards=text(item["shards"], f"{where}.shards"),
            model=text(item["model"], f"{where}.model"),
            head=_optional_text(item, "head", where, None),
            collection=text(item.get("collection", COLLECTIONS[0]), f"{where}.collection", choices=COLLECTIONS),
            write_embeddings=_optional_text(item, "write_embeddings", where, None),
            batch_size=integer(item.get("batch_size", 64), f"{where}.batch_size", minimum=1),
        )
    if name == "join":
        return JoinStage(
            aesthetic_tags=_optional_text(item, "aesthetic_tags", where, "lake"),
            swap_width_height=text(
                item.get("swap_width_height", "auto"), f"{where}.swap_width_height", choices=SWAP_CHOICES
            ),
        )
    if name == "aesthetic_embeddings":
        return AestheticEmbeddingsStage(export=_optional_text(item, "export", where, "aesthetic_embeddings"))
    if name == "kv":
        files = item["files"]
        if not isinstance(files, list) or not files:
            raise PipelineConfigError(f"{where}.files: expected a non-empty list, got {files!r}")
        parsed = tuple(_kv_file(entry, f"{where}.files[{i}]") for i, entry in enumerate(files))
        names = [f.name for f in parsed]
        if len(set(names)) != len(names):
            raise PipelineConfigError(f"{where}.files: two files share a name in {names}")
        return KVStage(out=text(item.get("out", "kv"), f"{where}.out"), files=parsed)
    if name == "umap_sample":
        return UmapSampleStage(
            subset=text(item["subset"], f"{where}.subset"),
            rows=integer(item["rows"], f"{where}.rows", minimum=1),
            seed=integer(item.get("seed", 0), f"{where}.seed", minimum=0),
        )
    if name == "umap":
        return _umap(item, where)
    if name == "report":
        return ReportStage(
            out=text(item.get("out", "report"), f"{where}.out"),
            samples=integer(item.get("samples", 3), f"{where}.samples", minimum=0),
            log_scale=flag(item.get("log_scale", False), f"{where}.log_scale"),
        )
    return None  # subsets and stats take no parameters here (subsets: the top-level keys)


def _kv_file(data: object, where: str) -> KVFile:
    item = mapping(
        data,
        where,
        required={"name", "table", "value_columns"},
        optional={"value_format", "where", "on_duplicate", "max_rows_per_range"},
    )
    return KVFile(
        name=text(item["name"], f"{where}.name"),
        table=text(item["table"], f"{where}.table"),
        value_columns=strings(item["value_columns"], f"{where}.value_columns"),
        value_format=_optional_text(item, "value_format", where, None),
        where=_optional_text(item, "where", where, None),
        on_duplicate=text(item.get("on_duplicate", "max"), f"{where}.on_duplicate", choices=ON_DUPLICATE),
        max_rows_per_range=integer(
            item.get("max_rows_per_range", DEFAULT_MAX_ROWS_PER_RANGE), f"{where}.max_rows_per_range", minimum=1
        ),
    )


def _umap(item: Mapping, where: str) -> UmapStage:
    neighbors = item.get("neighbors", [10, 30, 60])
    if not isinstance(neighbors, list) or not neighbors:
        raise PipelineConfigError(f"{where}.neighbors: expected a non-empty list of integers, got {neighbors!r}")
    parsed = tuple(integer(n, f"{where}.neighbors[{i}]", minimum=2) for i, n in enumerate(neighbors))
    if len(set(parsed)) != len(parsed):
        raise PipelineConfigError(f"{where}.neighbors: duplicate entries in {neighbors!r}")
    fit_rows = item.get("fit_rows")
    return UmapStage(
        model=text(item["model"], f"{where}.model"),
        neighbors=parsed,
        epochs=integer(item.get("epochs", 1000), f"{where}.epochs", minimum=1),
        negative_sample_rate=integer(item.get("negative_sample_rate", 20), f"{where}.negative_sample_rate", minimum=1),
        dim=integer(item.get("dim", 64), f"{where}.dim", minimum=2),
        seed=integer(item.get("seed", 0), f"{where}.seed", minimum=0),
        fit_rows=None if fit_rows is None else integer(fit_rows, f"{where}.fit_rows", minimum=1),
        mode=text(item.get("mode", "pooled"), f"{where}.mode", choices=("pooled", "projected")),
        renders=text(item.get("renders", "umap"), f"{where}.renders"),
    )

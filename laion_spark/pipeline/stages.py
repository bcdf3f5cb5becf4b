"""The pipeline's stages: what each reads, writes and needs, and the library call that runs it.

Each :class:`Stage` declares its inputs (files the user gives, checked before
the pipeline starts, and lake tables earlier stages write), its outputs, its
resources and its parameters; the runner fingerprints inputs and parameters to
decide what is complete. A stage calls the same library function as its
command (``score`` -> ``score-embeddings`` ...), which records its run in ``runs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..engine.factory import LakeSession
from ..lake.runs import RunSummary
from ..lake.tables import lake_table
from .config import PipelineConfig
from .spec import PipelineSpec

#: Tables every job appends to; never a stage input or output (they change with every run).
BOOKKEEPING = ("runs", "pipeline_stages")


@dataclass
class StageContext:
    """What a stage sees: the session, the whole config, and where things are."""

    lake: LakeSession
    config: PipelineConfig
    echo: Callable[[str], None]

    @property
    def spec(self) -> PipelineSpec:
        """The ``pipeline:`` section."""
        assert self.config.pipeline is not None
        return self.config.pipeline

    @property
    def lake_dir(self) -> str:
        """The lake folder (or URI)."""
        return self.spec.lake_dir

    def table(self, name: str) -> str:
        """Path of the lake table ``name``."""
        return lake_table(self.lake_dir, name)

    def params(self, stage: str) -> object:
        """The stage's parameters from ``pipeline.stages``."""
        return self.spec.stages[stage]

    @cached_property
    def head_path(self) -> str:
        """The scoring head's file (a name resolves to the cache, fetched once where there is network)."""
        from ..aesthetic.heads import resolve_head

        assert self.spec.head is not None
        given = self.spec.head
        local = Path(self.spec.path(given))
        return str(resolve_head(local if local.is_file() else given))

    @cached_property
    def head(self):  # a laion_spark.aesthetic.Head, imported lazily
        """The scoring head, loaded once per pipeline run."""
        from ..aesthetic.heads import load_head

        return load_head(self.head_path)


@dataclass(frozen=True)
class Stage:
    """One stage: its name, the command it mirrors, resources, inputs, outputs, parameters and its run."""

    name: str
    command: str
    resources: str
    files: Callable[[StageContext], list[str]]
    tables: Callable[[StageContext], list[str]]
    outputs: Callable[[StageContext], list[str]]
    run: Callable[[StageContext], list[RunSummary]]
    params: Callable[[StageContext], object] = lambda ctx: None

    def inputs(self, ctx: StageContext) -> list[str]:
        """Every input: the user's files and the lake tables it reads."""
        return [*self.files(ctx), *self.tables(ctx)]


def _collections(ctx: StageContext, field: str) -> list[tuple[str, str]]:
    """``(collection, path)`` of every collection that has ``field`` (``metadata``, ``embeddings`` ...)."""
    return [(c.name, ctx.spec.path(getattr(c, field))) for c in ctx.spec.collections if getattr(c, field)]


def _lake_tables(ctx: StageContext) -> list[str]:
    """Every table folder of the lake but the bookkeeping ones."""
    root = Path(ctx.lake_dir)
    if not root.is_dir():
        return []
    return [str(p) for p in sorted(root.iterdir()) if p.is_dir() and p.name not in BOOKKEEPING]


# -- score --------------------------------------------------------------------------------------------------


def _score(ctx: StageContext) -> list[RunSummary]:
    from ..aesthetic import score_embeddings

    params = ctx.params("score")
    summaries = []
    for collection, folder in _collections(ctx, "embeddings"):
        summary = score_embeddings(
            ctx.lake,
            folder,
            ctx.head,
            ctx.lake_dir,
            collection=collection,
            shards_per_commit=params.shards_per_commit,
            skip_refused=params.skip_refused,
        )
        ctx.echo(summary.format())
        summaries.append(summary)
    return summaries


# -- images -------------------------------------------------------------------------------------------------


def _images_head(ctx: StageContext) -> str:
    params = ctx.params("images")
    if params.head is None:
        return ctx.head_path
    local = Path(ctx.spec.path(params.head))
    return str(local) if local.is_file() else params.head


def _images(ctx: StageContext) -> list[RunSummary]:
    from ..clip import score_images

    params = ctx.params("images")
    summary = score_images(
        ctx.lake,
        ctx.spec.path(params.shards),
        params.model,
        _images_head(ctx),
        ctx.lake_dir,
        write_embeddings=ctx.spec.path(params.write_embeddings) if params.write_embeddings else None,
        collection=params.collection,
        batch_size=params.batch_size,
    )
    ctx.echo(summary.format())
    return [summary]


def _image_outputs(ctx: StageContext) -> list[str]:
    from ..clip.params import IMAGE_ERRORS_TABLE, IMAGE_TAGS_TABLE, IMAGE_TARS_TABLE

    params = ctx.params("images")
    extra = [ctx.spec.path(params.write_embeddings)] if params.write_embeddings else []
    return [*(ctx.table(t) for t in (IMAGE_TAGS_TABLE, IMAGE_ERRORS_TABLE, IMAGE_TARS_TABLE)), *extra]


# -- join ---------------------------------------------------------------------------------------------------


def _aesthetic_tags(ctx: StageContext) -> str | None:
    source = ctx.params("join").aesthetic_tags
    if source is None:
        return None
    return ctx.table("aesthetic_tags") if source == "lake" else ctx.spec.path(source)


def _join(ctx: StageContext) -> list[RunSummary]:
    from ..ingest import join_tags

    params = ctx.params("join")
    tags = _aesthetic_tags(ctx)
    head = ctx.head.name if tags is not None and ctx.spec.head is not None else None
    summaries = []
    for collection in ctx.spec.collections:
        if not collection.metadata:
            continue
        summary = join_tags(
            ctx.lake,
            ctx.spec.path(collection.metadata),
            collection.name,
            ctx.lake_dir,
            aesthetic_tags=tags,
            watermark_tags=ctx.spec.path(collection.watermark_tags) if collection.watermark_tags else None,
            safety_tags=ctx.spec.path(collection.safety_tags) if collection.safety_tags else None,
            aesthetic_head=head,
            swap_width_height=params.swap_width_height,
        )
        ctx.echo(summary.format())
        summaries.append(summary)
    return summaries


def _join_files(ctx: StageContext) -> list[str]:
    files = []
    for c in ctx.spec.collections:
        files += [ctx.spec.path(p) for p in (c.metadata, c.watermark_tags, c.safety_tags) if p and c.metadata]
    tags = ctx.params("join").aesthetic_tags
    if tags not in (None, "lake"):
        files.append(ctx.spec.path(tags))
    return files


# -- subsets, stats -----------------------------------------------------------------------------------------


def _subsets(ctx: StageContext) -> list[RunSummary]:
    from ..subsets import build_subsets

    summaries = build_subsets(ctx.lake, ctx.lake_dir, ctx.config)
    for summary in summaries:
        ctx.echo(summary.format())
    return summaries


def _stats(ctx: StageContext) -> list[RunSummary]:
    from ..aesthetic import build_score_distribution, format_distribution

    table = build_score_distribution(ctx.lake, ctx.lake_dir)
    ctx.echo(format_distribution(table) if not table.empty else "aesthetic_tags holds no rows")
    return []


# -- aesthetic embeddings -----------------------------------------------------------------------------------


def _aesthetic_embeddings(ctx: StageContext) -> list[RunSummary]:
    from ..aesthetic import build_aesthetic_embeddings, export_aesthetic_embeddings

    folders = [folder for _, folder in _collections(ctx, "embeddings")]
    summary = build_aesthetic_embeddings(ctx.lake, folders, ctx.head, ctx.lake_dir)
    ctx.echo(summary.format())
    export = ctx.params("aesthetic_embeddings").export
    if export:
        written = export_aesthetic_embeddings(ctx.lake, ctx.lake_dir, ctx.spec.path(export), head=ctx.head.name)
        ctx.echo(f"wrote {len(written)} rating files to {ctx.spec.path(export)}")
    return [summary]


def _embedding_export(ctx: StageContext) -> list[str]:
    export = ctx.params("aesthetic_embeddings").export
    return [ctx.table("aesthetic_embeddings"), *([ctx.spec.path(export)] if export else [])]


# -- kv -----------------------------------------------------------------------------------------------------


def _kv_where(ctx: StageContext, where: str | None) -> str | None:
    """A file's filter, with ``{head}`` standing for the scoring head's name."""
    if where is None or "{head}" not in where:
        return where
    return where.replace("{head}", ctx.head.name)


def _kv(ctx: StageContext) -> list[RunSummary]:
    from ..kv import build_kv

    params = ctx.params("kv")
    out = Path(ctx.spec.path(params.out))
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for file in params.files:
        result = build_kv(
            ctx.lake,
            ctx.table(file.table),
            out / file.name,
            list(file.value_columns),
            value_format=file.value_format,
            on_duplicate=file.on_duplicate,
            max_rows_per_range=file.max_rows_per_range,
            where=_kv_where(ctx, file.where),
            lake_dir=ctx.lake_dir,
        )
        ctx.echo(result.summary().format())
        summaries.append(result.summary())
    return summaries


def _kv_outputs(ctx: StageContext) -> list[str]:
    params = ctx.params("kv")
    return [str(Path(ctx.spec.path(params.out)) / file.name) for file in params.files]


def _kv_params(ctx: StageContext) -> object:
    params = ctx.params("kv")
    return {"stage": params, "where": [_kv_where(ctx, f.where) for f in params.files]}


# -- UMAP ---------------------------------------------------------------------------------------------------


def _umap_sample(ctx: StageContext) -> list[RunSummary]:
    from ..umap import sample_for_umap

    params = ctx.params("umap_sample")
    summary = sample_for_umap(ctx.lake, ctx.lake_dir, params.subset, params.rows, params.seed)
    ctx.echo(summary.format())
    return [summary]


def _umap(ctx: StageContext) -> list[RunSummary]:
    from ..umap import build_umap

    params = ctx.params("umap")
    summary = build_umap(
        ctx.lake,
        ctx.lake_dir,
        params.model,
        neighbors=params.neighbors,
        epochs=params.epochs,
        negative_sample_rate=params.negative_sample_rate,
        dim=params.dim,
        seed=params.seed,
        fit_rows=params.fit_rows,
        mode=params.mode,
        renders=ctx.spec.path(params.renders),
    )
    ctx.echo(summary.format())
    return [summary]


# -- report -------------------------------------------------------------------------------------------------


def _report(ctx: StageContext) -> list[RunSummary]:
    from ..report import build_report

    params = ctx.params("report")
    page = build_report(
        ctx.lake,
        ctx.lake_dir,
        ctx.spec.path(params.out),
        config=ctx.config,
        log_scale=params.log_scale,
        samples_per_bucket=params.samples,
    )
    ctx.echo(f"report written to {page}")
    return []


def _none(ctx: StageContext) -> list[str]:
    return []


def _head_file(ctx: StageContext) -> list[str]:
    return [ctx.head_path]


def _params(name: str) -> Callable[[StageContext], object]:
    return lambda ctx: ctx.params(name)


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "score",
            "score-embeddings",
            "cpu",
            files=lambda ctx: [f for _, f in _collections(ctx, "embeddings")] + _head_file(ctx),
            tables=_none,
            outputs=lambda ctx: [ctx.table("aesthetic_tags"), ctx.table("aesthetic_tags_rejected")],
            run=_score,
            params=_params("score"),
        ),
        Stage(
            "images",
            "score-images",
            "gpu",
            files=lambda ctx: [ctx.spec.path(ctx.params("images").shards), _images_head(ctx)],
            tables=_none,
            outputs=_image_outputs,
            run=_images,
            params=_params("images"),
        ),
        Stage(
            "join",
            "join-tags",
            "cpu",
            files=_join_files,
            tables=lambda ctx: [ctx.table("aesthetic_tags")] if ctx.params("join").aesthetic_tags == "lake" else [],
            outputs=lambda ctx: [ctx.table("joined")],
            run=_join,
            params=lambda ctx: {"stage": ctx.params("join"), "head": ctx.spec.head},
        ),
        Stage(
            "subsets",
            "subsets",
            "cpu",
            files=_none,
            tables=lambda ctx: [ctx.table("joined")],
            outputs=lambda ctx: [ctx.table(s.table) for s in ctx.config.subsets],
            run=_subsets,
            params=lambda ctx: [
                ctx.config.safety,
                ctx.config.subsets,
                ctx.config.shuffle_seed,
                ctx.config.target_files,
            ],
        ),
        Stage(
            "stats",
            "stats",
            "cpu",
            files=_none,
            tables=lambda ctx: [ctx.table("aesthetic_tags")],
            outputs=lambda ctx: [ctx.table("score_distribution")],
            run=_stats,
        ),
        Stage(
            "aesthetic_embeddings",
            "aesthetic-embeddings",
            "cpu",
            files=lambda ctx: [f for _, f in _collections(ctx, "embeddings")] + _head_file(ctx),
            tables=_none,
            outputs=_embedding_export,
            run=_aesthetic_embeddings,
            params=_params("aesthetic_embeddings"),
        ),
        Stage(
            "kv",
            "build-kv",
            "cpu",
            files=_none,
            tables=lambda ctx: sorted({ctx.table(f.table) for f in ctx.params("kv").files}),
            outputs=_kv_outputs,
            run=_kv,
            params=_kv_params,
        ),
        Stage(
            "umap_sample",
            "sample-for-umap",
            "cpu",
            files=_none,
            tables=lambda ctx: [ctx.table(f"subset_{ctx.params('umap_sample').subset}")],
            outputs=lambda ctx: [ctx.table("umap_sample")],
            run=_umap_sample,
            params=_params("umap_sample"),
        ),
        Stage(
            "umap",
            "umap",
            "gpu",
            files=_none,
            tables=lambda ctx: [ctx.table("umap_sample")],
            outputs=lambda ctx: [ctx.table("umap"), ctx.spec.path(ctx.params("umap").renders)],
            run=_umap,
            params=_params("umap"),
        ),
        Stage(
            "report",
            "report",
            "cpu",
            files=_none,
            tables=_lake_tables,
            outputs=lambda ctx: [ctx.spec.path(ctx.params("report").out)],
            run=_report,
            params=lambda ctx: [ctx.params("report"), ctx.config.safety, ctx.config.subsets],
        ),
    )
}

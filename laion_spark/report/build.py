"""``build_report``: gather the lake's tables, draw the charts, write ``index.html`` beside them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..lake.layout import is_local
from ..lake.runs import RunSummary, record_run
from ..subsets.params import load_subsets_config
from .charts import distribution_chart, funnel_chart
from .data import JOINED_STAGE, SAFETY_STAGE, ReportData, gather_report_data
from .html import render_report
from .map import MAP_PAGE, read_map_data, umap_renders, write_map_page
from .params import PAGE, Report

if TYPE_CHECKING:
    from ..engine.session import LakeSession


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def funnel_stages(data: ReportData) -> list[str]:
    """``joined``, ``passed safety``, then the subsets present, largest first."""
    if data.funnel is None:
        return []
    subsets = data.funnel[~data.funnel["stage"].isin([JOINED_STAGE, SAFETY_STAGE])]
    by_size = subsets.groupby("stage")["rows"].sum().sort_values(ascending=False, kind="stable")
    return [JOINED_STAGE, SAFETY_STAGE, *by_size.index]


def draw_charts(data: ReportData, out: Path, log_scale: bool = False) -> dict[str, Path]:
    """Write the PNG charts into ``out``; keys ``distribution:<collection>`` and ``funnel``."""
    charts: dict[str, Path] = {}
    if data.distribution is not None:
        for collection, group in data.distribution.groupby("collection", sort=True):
            path = out / f"distribution_{_slug(str(collection))}.png"
            charts[f"distribution:{collection}"] = distribution_chart(group, str(collection), path, log_scale)
    if data.funnel is not None:
        charts["funnel"] = funnel_chart(data.funnel, funnel_stages(data), out / "funnel.png")
    return charts


def build_report(lake: LakeSession, stage: Report) -> Path:
    """Write ``index.html`` (self-contained) and its PNG charts into ``stage.folder``, record the run; return the
    HTML path (:class:`~laion_spark.report.params.Report` lists the parameters).

    With a ``umap`` table in the lake, the page also shows a datashader PNG per
    layout and links ``umap_map.html``, the interactive map written beside it.

    Every table is optional (a missing one becomes a note on the page); raises
    :class:`~laion_spark.errors.InputError` for a lake folder that does not exist and an ``out`` that is a file.
    """
    out, lake_dir = stage.folder, stage.lake
    if is_local(lake_dir) and not Path(lake_dir).is_dir():  # an empty report of a lake that is not there is no report
        what = "is not a folder" if Path(lake_dir).exists() else "does not exist"
        raise InputError(f"--lake {lake_dir}: {what}; give the lake folder the jobs wrote")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    data = gather_report_data(lake, lake_dir, stage.config or load_subsets_config(), stage.samples)
    charts = draw_charts(data, out, stage.log_scale)
    charts.update(umap_renders(lake, lake_dir, out))
    umap = read_map_data(lake, lake_dir)
    map_page = write_map_page(umap, out / MAP_PAGE) if umap is not None else None
    page = out / PAGE
    page.write_text(render_report(data, charts, funnel_stages(data), stage.log_scale, map_page), encoding="utf-8")
    summary = RunSummary(job=stage.command, collection="*", target=str(page))
    summary.metrics = {"charts": len(charts), "notes": len(data.notes)}
    record_run(lake, lake_dir, summary)
    return page

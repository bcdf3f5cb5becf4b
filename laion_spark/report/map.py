"""The interactive caption map: one self-contained HTML page over the ``umap`` table's layouts.

Pan (drag), zoom (wheel, + / -, 0 resets) and hover (caption, aesthetic score
and URL; a click opens an http(s) URL) over up to :data:`MAP_POINTS` points,
one view per n_neighbors. No network at view time: the data sits in the page
as base64 float32 arrays and JSON, the code is inline. Points are drawn into
one ``ImageData`` per frame, coloured by score rank (histogram-equalised, with
the palette of the PNG renders); hover looks up the nearest point in a uniform
grid built once per view, so 100k points stay fluid.

The page's template, style and code are package data beside this module
(``map.html``, ``map.css``, ``map.js``: :mod:`.assets`), inlined into each page.
``window.laionMap`` exposes the views and ``screenOf(i)`` / ``pick(x, y)`` for
automation (the Chromium test drives hover through it).
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..lake.finite import finite_or_nan
from ..lake.layout import lake_table
from ..lake.tables import read_table, table_exists
from ..umap.params import UMAP_TABLE, coordinate_columns
from ..umap.render import BACKGROUND, palette
from ..umap.sample import first_by_rank
from .assets import asset

if TYPE_CHECKING:
    from ..engine.session import LakeSession

#: Most points a map page carries (picked by a seeded hash when the table holds more).
MAP_POINTS = 100_000
#: Characters of a caption and of a URL kept for the hover box.
CAPTION_CHARS, URL_CHARS = 300, 500
MAP_PAGE = "umap_map.html"
_PAIR = re.compile(r"^x_nn(\d+)$")


@dataclass
class MapData:
    """The points of a map page: ``URL, TEXT, AESTHETIC_SCORE`` and a coordinate pair per n_neighbors."""

    points: pd.DataFrame
    neighbors: list[int]
    total_rows: int


def layout_neighbors(columns: list[str]) -> list[int]:
    """The n_neighbors values whose ``x_nn<k>`` and ``y_nn<k>`` columns are both in ``columns``, in column order."""
    found = [int(m.group(1)) for c in columns if (m := _PAIR.match(c))]
    return [n for n in found if f"y_nn{n}" in columns]


def read_map_data(
    lake: LakeSession, lake_dir: str | Path, max_points: int = MAP_POINTS, seed: int = 0
) -> MapData | None:
    """The ``umap`` table's points for a map (at most ``max_points``, by a seeded hash); ``None`` without a table."""
    path = lake_table(lake_dir, UMAP_TABLE)
    if not table_exists(lake, path):
        return None
    table = read_table(lake, path)
    neighbors = layout_neighbors(table.columns)
    if not neighbors:
        return None
    chosen, total = first_by_rank(table, max_points, seed)
    columns = ["URL", "TEXT", "AESTHETIC_SCORE", *coordinate_columns(neighbors)]
    return MapData(chosen.select(*columns).toPandas(), neighbors, total)


def _floats(values: pd.Series | np.ndarray) -> str:
    array = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype="<f4")
    return base64.b64encode(array.tobytes()).decode("ascii")


def _clip(values: pd.Series, chars: int) -> list[str | None]:
    return [v[:chars] if isinstance(v, str) else None for v in values]


def _script_json(payload: dict) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no line separators)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def map_payload(data: MapData) -> dict:
    """What the page's script reads: counts, palette, scores, captions, URLs and one view per n_neighbors."""
    points = data.points
    views = []
    for n in data.neighbors:
        x, y = coordinate_columns([n])
        views.append({"name": f"nn{n}", "label": f"n_neighbors {n}", "x": _floats(points[x]), "y": _floats(points[y])})
    return {
        "n": len(points),
        "total": data.total_rows,
        "palette": palette(),
        "background": BACKGROUND,
        "score": _floats(finite_or_nan(pd.to_numeric(points["AESTHETIC_SCORE"], errors="coerce"))),  # unscored
        "text": _clip(points["TEXT"], CAPTION_CHARS),
        "url": _clip(points["URL"], URL_CHARS),
        "views": views,
    }


def write_map_page(data: MapData, path: str | Path, title: str = "Caption map") -> Path:
    """Write the self-contained map page of ``data`` to ``path``; return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = len(data.points)
    of = f" (a seeded sample of the {data.total_rows:,} rows)" if data.total_rows > shown else ""
    caption = (
        f"{shown:,} captions of <code>umap</code>{of}, laid out by UMAP of their CLIP text embeddings and "
        "coloured by aesthetic score (rank-equalised, as the PNG renders). Drag to pan, wheel or + / - to zoom, "
        "0 to reset; hover a point for its caption, score and URL; a click opens the URL."
    )
    page = asset("map.html").format(
        title=html.escape(title),
        caption=caption,
        css=asset("map.css"),
        data=_script_json(map_payload(data)),
        script=asset("map.js"),
    )
    path.write_text(page, encoding="utf-8")
    return path


def umap_renders(lake: LakeSession, lake_dir: str | Path, out: str | Path) -> dict[str, Path]:
    """Datashader PNGs of every row of the ``umap`` table into ``out``: keys ``umap:nn<k>`` (empty without one)."""
    from ..umap.render import render_layouts

    path = lake_table(lake_dir, UMAP_TABLE)
    if not table_exists(lake, path):
        return {}
    table = read_table(lake, path)
    neighbors = layout_neighbors(table.columns)
    if not neighbors:
        return {}
    points = table.select("AESTHETIC_SCORE", *coordinate_columns(neighbors)).toArrow().to_pandas()
    if points.empty:
        return {}
    return {f"umap:nn{n}": png for n, png in render_layouts(points, neighbors, out).items()}

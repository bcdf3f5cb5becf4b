"""The interactive caption map: one self-contained HTML page over the ``umap`` table's layouts.

Pan (drag), zoom (wheel, + / -, 0 resets) and hover (caption, aesthetic score
and URL; a click opens an http(s) URL) over up to :data:`MAP_POINTS` points,
one view per n_neighbors. No network at view time: the data sits in the page
as base64 float32 arrays and JSON, the code is inline. Points are drawn into
one ``ImageData`` per frame, coloured by score rank (histogram-equalised, with
the palette of the PNG renders); hover looks up the nearest point in a uniform
grid built once per view, so 100k points stay fluid.

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

import numpy as np
import pandas as pd

from ..engine.factory import LakeSession
from ..lake.layout import lake_table
from ..lake.tables import read_table, table_exists
from ..umap.params import UMAP_TABLE, coordinate_columns
from ..umap.render import BACKGROUND, palette
from ..umap.sample import first_by_rank

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
        "score": _floats(points["AESTHETIC_SCORE"]),
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
    page = _PAGE.format(
        title=html.escape(title),
        caption=caption,
        css=_CSS,
        data=_script_json(map_payload(data)),
        script=_SCRIPT,
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


_CSS = """
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; }
body { display: flex; flex-direction: column; color: #e8eaef; background: #101217;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif; }
header { padding: 10px 16px 8px; border-bottom: 1px solid #262a33; }
h1 { font-size: 18px; margin: 0 0 2px; }
header p { margin: 0 0 8px; color: #a9afbb; font-size: 13px; max-width: 1100px; }
code { font: 12px ui-monospace, Menlo, Consolas, monospace; background: #1d2028; padding: 1px 4px; border-radius: 3px; }
.bar { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
button { font: inherit; color: #e8eaef; background: #1d2028; border: 1px solid #343946; border-radius: 5px;
         padding: 3px 10px; cursor: pointer; }
button[aria-pressed="true"] { background: #3b6fb6; border-color: #3b6fb6; }
.legend { display: flex; align-items: center; gap: 6px; margin-left: 12px; color: #a9afbb; font-size: 12px; }
.legend .ramp { width: 160px; height: 10px; border-radius: 2px; }
#stage { position: relative; flex: 1; min-height: 300px; }
#map { position: absolute; inset: 0; width: 100%; height: 100%; cursor: grab; touch-action: none; }
#map.dragging { cursor: grabbing; }
#tip { position: absolute; pointer-events: none; max-width: 420px; background: rgba(20, 22, 28, 0.95);
       border: 1px solid #3a3f4c; border-radius: 6px; padding: 7px 9px; font-size: 13px; }
#tip .score { color: #f0d264; font-variant-numeric: tabular-nums; margin: 2px 0; }
#tip .url { color: #8fb3e8; font-size: 12px; overflow-wrap: anywhere; }
#tip .none { color: #8a909c; font-style: italic; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("map-data").textContent);
  var n = data.n;
  function floats(b64) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }
  function rgb(hex) { return [parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)]; }
  var little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  function pack(c) {
    return little ? ((255 << 24) | (c[2] << 16) | (c[1] << 8) | c[0]) >>> 0 : ((c[0] << 24) | (c[1] << 16) | (c[2] << 8) | 255) >>> 0;
  }
  var score = floats(data.score);
  var palette = data.palette.map(rgb);
  var background = pack(rgb(data.background));
  var scored = [], unscored = [];
  for (var i = 0; i < n; i++) (Number.isNaN(score[i]) ? unscored : scored).push(i);
  scored.sort(function (a, b) { return score[a] - score[b]; });
  var drawOrder = Int32Array.from(unscored.concat(scored));
  var colour = new Uint32Array(n).fill(pack([128, 128, 128]));
  scored.forEach(function (p, rank) {
    colour[p] = pack(palette[Math.min(palette.length - 1, Math.floor((rank / scored.length) * palette.length))]);
  });
  var GRID = 256;
  var views = data.views.map(function (v) { return { name: v.name, label: v.label, x: floats(v.x), y: floats(v.y), grid: null }; });

  function buildGrid(v) {
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity, i;
    for (i = 0; i < n; i++) {
      var x = v.x[i], y = v.y[i];
      if (!isFinite(x) || !isFinite(y)) continue;
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (x0 > x1) { x0 = y0 = 0; x1 = y1 = 1; }
    var cell = Math.max(x1 - x0, y1 - y0, 1e-9) / GRID;
    var cells = new Int32Array(n), start = new Int32Array(GRID * GRID + 1), items = new Int32Array(n);
    for (i = 0; i < n; i++) {
      if (!isFinite(v.x[i]) || !isFinite(v.y[i])) { cells[i] = -1; continue; }
      var cx = Math.min(GRID - 1, Math.floor((v.x[i] - x0) / cell)), cy = Math.min(GRID - 1, Math.floor((v.y[i] - y0) / cell));
      cells[i] = cy * GRID + cx;
      start[cells[i] + 1]++;
    }
    for (i = 0; i < GRID * GRID; i++) start[i + 1] += start[i];
    var fill = start.slice(0, GRID * GRID);
    for (i = 0; i < n; i++) if (cells[i] >= 0) items[fill[cells[i]]++] = i;
    v.grid = { x0: x0, x1: x1, y0: y0, y1: y1, cell: cell, start: start, items: items };
  }

  var canvas = document.getElementById("map"), ctx = canvas.getContext("2d");
  var tip = document.getElementById("tip"), stage = document.getElementById("stage");
  var state = { view: null, cx: 0, cy: 0, scale: 1, hovered: -1, pending: false, drawn: 0 };
  var image = null;

  function size() { return { w: canvas.clientWidth, h: canvas.clientHeight }; }
  function reset() {
    var g = state.view.grid, s = size();
    state.cx = (g.x0 + g.x1) / 2; state.cy = (g.y0 + g.y1) / 2;
    state.scale = 0.92 * Math.min(s.w / Math.max(g.x1 - g.x0, 1e-9), s.h / Math.max(g.y1 - g.y0, 1e-9));
    request();
  }
  function toScreen(x, y) { var s = size(); return { x: (x - state.cx) * state.scale + s.w / 2, y: s.h / 2 - (y - state.cy) * state.scale }; }
  function toData(px, py) { var s = size(); return { x: (px - s.w / 2) / state.scale + state.cx, y: state.cy - (py - s.h / 2) / state.scale }; }

  function draw() {
    state.pending = false;
    var dpr = window.devicePixelRatio || 1, s = size();
    var W = Math.max(1, Math.round(s.w * dpr)), H = Math.max(1, Math.round(s.h * dpr));
    if (canvas.width !== W || canvas.height !== H || !image) { canvas.width = W; canvas.height = H; image = ctx.createImageData(W, H); }
    var buf = new Uint32Array(image.data.buffer);
    buf.fill(background);
    var v = state.view, k = state.scale * dpr, ox = W / 2 - state.cx * k, oy = H / 2 + state.cy * k;
    var dot = Math.max(1, Math.round(dpr * (n > 30000 ? 1.5 : 2.5))), drawn = 0;
    for (var j = 0; j < n; j++) {
      var i = drawOrder[j], px = Math.round(v.x[i] * k + ox), py = Math.round(oy - v.y[i] * k);
      if (!(px >= 0 && py >= 0 && px < W && py < H)) continue;
      drawn++;
      var c = colour[i];
      for (var dy = 0; dy < dot && py + dy < H; dy++) {
        var row = (py + dy) * W + px;
        for (var dx = 0; dx < dot && px + dx < W; dx++) buf[row + dx] = c;
      }
    }
    if (state.hovered >= 0) {
      var h = toScreen(v.x[state.hovered], v.y[state.hovered]);
      ctx.putImageData(image, 0, 0);
      ctx.strokeStyle = "#ffffff"; ctx.lineWidth = dpr * 1.5;
      ctx.beginPath(); ctx.arc(h.x * dpr, h.y * dpr, dpr * 6, 0, 2 * Math.PI); ctx.stroke();
    } else {
      ctx.putImageData(image, 0, 0);
    }
    state.drawn = drawn;
    canvas.dataset.drawn = String(drawn);
    document.body.dataset.points = String(n);
  }
  function request() { if (!state.pending) { state.pending = true; window.requestAnimationFrame(draw); } }

  function pick(px, py) {
    var v = state.view, g = v.grid, p = toData(px, py), r = 8 / state.scale, best = -1, bestD = r * r;
    var c0 = Math.max(0, Math.floor((p.x - r - g.x0) / g.cell)), c1 = Math.min(GRID - 1, Math.floor((p.x + r - g.x0) / g.cell));
    var r0 = Math.max(0, Math.floor((p.y - r - g.y0) / g.cell)), r1 = Math.min(GRID - 1, Math.floor((p.y + r - g.y0) / g.cell));
    for (var row = r0; row <= r1; row++) {
      for (var col = c0; col <= c1; col++) {
        var cell = row * GRID + col;
        for (var t = g.start[cell]; t < g.start[cell + 1]; t++) {
          var i = g.items[t], dx = v.x[i] - p.x, dy = v.y[i] - p.y, d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }
  function line(cls, text) { var el = document.createElement("div"); el.className = cls; el.textContent = text; return el; }
  function showTip(i, px, py) {
    tip.replaceChildren(
      data.text[i] == null ? line("none", "(no caption)") : line("cap", data.text[i]),
      line("score", Number.isNaN(score[i]) ? "aesthetic score: none" : "aesthetic score " + score[i].toFixed(2)),
      data.url[i] == null ? line("none", "(no URL)") : line("url", data.url[i])
    );
    tip.hidden = false;
    var s = size(), left = px + 14, top = py + 14;
    if (left + tip.offsetWidth > s.w) left = Math.max(0, px - 14 - tip.offsetWidth);
    if (top + tip.offsetHeight > s.h) top = Math.max(0, py - 14 - tip.offsetHeight);
    tip.style.left = left + "px"; tip.style.top = top + "px";
  }
  function hover(px, py) {
    var i = pick(px, py);
    if (i !== state.hovered) { state.hovered = i; request(); }
    if (i >= 0) showTip(i, px, py); else tip.hidden = true;
    return i;
  }
  function local(e) { var b = canvas.getBoundingClientRect(); return { x: e.clientX - b.left, y: e.clientY - b.top }; }
  function zoom(factor, px, py) {
    var before = toData(px, py);
    state.scale *= factor;
    var after = toData(px, py);
    state.cx += before.x - after.x; state.cy += before.y - after.y;
    request();
  }

  var drag = null;
  canvas.addEventListener("pointerdown", function (e) {
    drag = { x: e.clientX, y: e.clientY, moved: false };
    try { canvas.setPointerCapture(e.pointerId); } catch (err) { /* a synthetic pointer cannot be captured */ }
    canvas.classList.add("dragging");
  });
  canvas.addEventListener("pointermove", function (e) {
    var p = local(e);
    if (!drag) { hover(p.x, p.y); return; }
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
    state.cx -= dx / state.scale; state.cy += dy / state.scale;
    drag.x = e.clientX; drag.y = e.clientY;
    tip.hidden = true; request();
  });
  canvas.addEventListener("pointerup", function (e) {
    var clicked = drag && !drag.moved;
    drag = null; canvas.classList.remove("dragging");
    if (!clicked) return;
    var p = local(e), i = hover(p.x, p.y), url = i >= 0 ? data.url[i] : null;
    if (url && /^https?:\/\//i.test(url)) window.open(url, "_blank", "noopener,noreferrer");
  });
  canvas.addEventListener("pointerleave", function () { if (!drag) { tip.hidden = true; state.hovered = -1; request(); } });
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    var p = local(e);
    zoom(Math.exp(-e.deltaY * 0.0015), p.x, p.y);
  }, { passive: false });
  canvas.addEventListener("dblclick", function () { reset(); });
  window.addEventListener("keydown", function (e) {
    var s = size();
    if (e.key === "+" || e.key === "=") zoom(1.25, s.w / 2, s.h / 2);
    else if (e.key === "-") zoom(0.8, s.w / 2, s.h / 2);
    else if (e.key === "0") reset();
  });
  window.addEventListener("resize", request);

  var buttons = document.getElementById("views");
  function setView(name) {
    var v = views.find(function (w) { return w.name === name; });
    if (!v) return false;
    if (!v.grid) buildGrid(v);
    state.view = v; state.hovered = -1; tip.hidden = true;
    Array.prototype.forEach.call(buttons.children, function (b) { b.setAttribute("aria-pressed", String(b.dataset.view === name)); });
    reset();
    return true;
  }
  views.forEach(function (v) {
    var b = document.createElement("button");
    b.type = "button"; b.dataset.view = v.name; b.textContent = v.label;
    b.addEventListener("click", function () { setView(v.name); });
    buttons.appendChild(b);
  });
  document.getElementById("reset").addEventListener("click", reset);

  var ramp = document.querySelector(".legend .ramp");
  ramp.style.background = "linear-gradient(to right, " + data.palette.filter(function (_, i) { return i % 16 === 0; }).concat([data.palette[data.palette.length - 1]]).join(", ") + ")";
  if (scored.length) {
    document.getElementById("low").textContent = score[scored[0]].toFixed(2);
    document.getElementById("high").textContent = score[scored[scored.length - 1]].toFixed(2);
  }

  window.laionMap = {
    views: views.map(function (v) { return v.name; }),
    setView: setView,
    reset: reset,
    zoom: zoom,
    pick: pick,
    hover: hover,
    screenOf: function (i) { var v = state.view, p = toScreen(v.x[i], v.y[i]), b = canvas.getBoundingClientRect(); return { x: p.x + b.left, y: p.y + b.top }; },
    get view() { return state.view.name; },
    get hovered() { return state.hovered; },
    get drawn() { return state.drawn; },
    get scale() { return state.scale; },
    text: function (i) { return data.text[i]; },
    draw: draw
  };
  if (views.length) setView(views[0].name);
  draw();
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p>{caption}</p>
<div class="bar"><span id="views" class="bar"></span><button type="button" id="reset">Reset view</button>
<span class="legend">score <span id="low"></span><span class="ramp"></span><span id="high"></span></span></div>
</header>
<div id="stage"><canvas id="map" aria-label="caption map"></canvas><div id="tip" hidden></div></div>
<script type="application/json" id="map-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

"""The caption map: a self-contained page over the umap table, driven in headless Chromium; the report links it."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import chromium_args
from PIL import Image

from laion_spark.lake.tables import write_table
from laion_spark.report import build_report
from laion_spark.report.map import MapData, layout_neighbors, read_map_data, write_map_page
from laion_spark.report.params import Report
from laion_spark.subsets.params import PUBLISHED_COLUMNS

HOSTILE = "<script>alert('x')</script> & \u2028 日本語 ☕"


def map_points(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` points in 12 blobs per layout, with a hostile caption, a null caption, URL and score."""
    rng = np.random.default_rng(seed)
    blob = rng.integers(0, 12, n)
    points = pd.DataFrame(
        {
            "URL": [f"https://img.example.com/{i}.jpg" for i in range(n)],
            "TEXT": [f"caption {i}" for i in range(n)],
            "AESTHETIC_SCORE": rng.uniform(6, 10, n).astype(np.float32),
        }
    )
    for k in (10, 30):
        centres = rng.normal(0, 10, (12, 2))
        xy = centres[blob] + rng.normal(0, 1, (n, 2))
        points[f"x_nn{k}"], points[f"y_nn{k}"] = xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32)
    points.loc[0, "TEXT"] = HOSTILE
    points.loc[1, ["TEXT", "URL"]] = None
    points.loc[2, "AESTHETIC_SCORE"] = np.nan
    return points


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*chromium_args(profile, height=900), *args], capture_output=True, text=True, timeout=180)


PROBE = """<script>
window.addEventListener("load", function () {
  var m = window.laionMap, canvas = document.getElementById("map"), tip = document.getElementById("tip"), out = {};
  var p = m.screenOf(0);
  canvas.dispatchEvent(new PointerEvent("pointermove", {clientX: p.x, clientY: p.y, bubbles: true}));
  out.hovered = m.hovered; out.tip = tip.textContent; out.tipShown = !tip.hidden;
  var q = m.screenOf(m.hovered); out.hoverDistance = Math.hypot(q.x - p.x, q.y - p.y);
  var nul = m.screenOf(1);
  out.nullTip = m.hover(nul.x - canvas.getBoundingClientRect().left, nul.y - canvas.getBoundingClientRect().top) === 1
    ? tip.textContent : "(not hovered)";
  var before = m.scale;
  canvas.dispatchEvent(new WheelEvent("wheel", {deltaY: -400, clientX: p.x, clientY: p.y, bubbles: true, cancelable: true}));
  out.zoom = m.scale / before; var r = m.screenOf(0); out.zoomAnchor = Math.hypot(r.x - p.x, r.y - p.y);
  canvas.dispatchEvent(new PointerEvent("pointerdown", {clientX: 600, clientY: 500, pointerId: 1, bubbles: true}));
  canvas.dispatchEvent(new PointerEvent("pointermove", {clientX: 650, clientY: 530, pointerId: 1, bubbles: true}));
  canvas.dispatchEvent(new PointerEvent("pointerup", {clientX: 650, clientY: 530, pointerId: 1, bubbles: true}));
  var s = m.screenOf(0); out.pan = [s.x - r.x, s.y - r.y];
  out.views = m.views; m.setView("nn30"); m.draw(); out.view = m.view; out.drawn = m.drawn;
  document.body.setAttribute("data-probe", JSON.stringify(out));
});
</script>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    points = map_points(100_000)
    return write_map_page(
        MapData(points, [10, 30], total_rows=250_000), tmp_path_factory.mktemp("map") / "umap_map.html"
    )


def test_the_page_is_self_contained_and_embeds_no_caption_as_markup(page):
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    assert "url(" not in text and "<link" not in text and "@import" not in text
    assert text.count("<script") == 2 and "<script>alert" not in text and "\u2028" not in text
    data = json.loads(re.search(r'<script type="application/json" id="map-data">(.*?)</script>', text, re.S).group(1))
    assert data["n"] == 100_000 and data["total"] == 250_000 and [v["name"] for v in data["views"]] == ["nn10", "nn30"]
    assert data["text"][0] == HOSTILE and data["text"][1] is None and data["url"][1] is None
    x10 = np.frombuffer(base64.b64decode(data["views"][0]["x"]), "<f4")
    np.testing.assert_array_equal(x10, map_points(100_000)["x_nn10"].to_numpy())
    assert "100,000 captions" in text and "seeded sample of the 250,000 rows" in text


def test_layout_columns_are_found_in_pairs():
    assert layout_neighbors([*PUBLISHED_COLUMNS, "x_nn10", "y_nn10", "x_nn60", "y_nn60", "x_nn5"]) == [10, 60]


@pytest.mark.browser
def test_chromium_draws_100k_points_without_console_errors(page, tmp_path):
    shot = tmp_path / "shot.png"
    proc = chromium("--enable-logging=stderr", "--v=0", f"--screenshot={shot}", page.as_uri(), profile=tmp_path / "p")
    log = proc.stdout + proc.stderr
    assert not [line for line in log.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line], log
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p").stdout
    assert 'data-points="100000"' in dom and 'data-drawn="100000"' in dom
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    background = np.all(np.abs(image - [0x10, 0x12, 0x17]) <= 2, axis=2)
    coloured = (image.max(axis=2) - image.min(axis=2)) > 60  # palette colours, not the grey UI
    assert background.mean() > 0.3 and coloured.sum() > 20_000


@pytest.mark.browser
def test_hover_shows_caption_score_and_url_and_the_view_pans_zooms_and_switches(page, tmp_path):
    probed = tmp_path / "probe.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = chromium("--enable-logging=stderr", "--v=0", "--dump-dom", probed.as_uri(), profile=tmp_path / "p")
    assert not [line for line in proc.stderr.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]
    probe = json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', proc.stdout).group(1)))
    assert probe["tipShown"] and probe["hoverDistance"] < 8
    points = map_points(100_000)
    hovered = points.iloc[probe["hovered"]]
    caption = hovered["TEXT"] if isinstance(hovered["TEXT"], str) else "(no caption)"
    assert caption in probe["tip"] and hovered["URL"] in probe["tip"]
    assert f"aesthetic score {hovered['AESTHETIC_SCORE']:.2f}" in probe["tip"]
    assert probe["nullTip"].startswith("(no caption)") and "(no URL)" in probe["nullTip"]
    assert probe["zoom"] > 1.5 and probe["zoomAnchor"] < 1.0
    assert probe["pan"] == pytest.approx([50, 30], abs=1.0)
    assert probe["views"] == ["nn10", "nn30"] and probe["view"] == "nn30" and probe["drawn"] == 100_000


def umap_table(n: int) -> pd.DataFrame:
    points = map_points(n, seed=4)
    points.loc[0, "TEXT"] = "<b>bold</b> & 日本語"  # (a U+2028 in a Delta log's string stats trips check_data_files)
    table = pd.DataFrame({c: points.get(c) for c in PUBLISHED_COLUMNS})
    table["WIDTH"] = table["HEIGHT"] = np.int32(512)
    table["similarity"], table["punsafe"], table["pwatermark"] = 0.3, np.float32(0.01), np.float32(0.02)
    table["hash"] = np.arange(n, dtype=np.int64)
    table["AESTHETIC_SCORE"] = table["AESTHETIC_SCORE"].fillna(7.0).astype(np.float32)
    for k in (10, 30):
        table[f"x_nn{k}"], table[f"y_nn{k}"] = points[f"x_nn{k}"], points[f"y_nn{k}"]
    return table


def test_the_report_links_the_map_and_shows_a_render_per_layout(sail, tmp_path):
    write_table(sail, sail.spark.createDataFrame(umap_table(3000)), tmp_path / "lake" / "umap", mode="overwrite")
    report = build_report(sail, Report(lake=tmp_path / "lake", out=tmp_path / "report"))
    text = report.read_text(encoding="utf-8")
    assert '<a href="umap_map.html">' in text and "UMAP of the captions" in text
    for k in (10, 30):
        png = report.parent / f"umap_nn{k}.png"
        assert f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode("ascii")}"' in text
    assert not re.search(r"<(script|link|iframe|object)\b", text, re.IGNORECASE)
    data = read_map_data(sail, tmp_path / "lake", max_points=1000, seed=1)
    assert len(data.points) == 1000 and data.total_rows == 3000 and data.neighbors == [10, 30]
    assert (report.parent / "umap_map.html").stat().st_size > 0


def test_a_lake_without_umap_gets_no_map(sail, tmp_path):
    (tmp_path / "lake").mkdir()  # a lake with no table (a lake that does not exist is refused)
    report = build_report(sail, Report(lake=tmp_path / "lake", out=tmp_path / "report"))
    assert "umap_map.html" not in report.read_text(encoding="utf-8")
    assert not (tmp_path / "report" / "umap_map.html").exists()

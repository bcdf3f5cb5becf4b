"""The pages' front-end files (laion_spark/report/*.js, *.css, *.html): the JavaScript parses, each page inlines
them, and the wheel and make dist's zip carry them.

``make lint-js`` runs ESLint over the JavaScript; the parse check here needs only ``node``, so a syntax error
fails the fast tier even where npm never ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
from conftest import REPO
from installs import clean_env

from laion_spark.report.assets import asset
from laion_spark.report.data import ReportData
from laion_spark.report.html import render_report
from laion_spark.report.map import MapData, write_map_page

FRONT_END = sorted(p.name for p in (REPO / "laion_spark" / "report").iterdir() if p.suffix in {".js", ".css", ".html"})


def require_node() -> str:
    """The ``node`` binary; skips the calling test where it is not installed (fails it under ``CI=true``)."""
    node = shutil.which("node")
    if node is None:
        reason = "node is not installed (apt-get install nodejs): the JavaScript's syntax is not checked"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must check it")
        pytest.skip(reason)
    return node


@pytest.mark.parametrize("name", [n for n in FRONT_END if n.endswith(".js")])
def test_the_javascript_parses(name):
    proc = subprocess.run(
        [require_node(), "--check", str(REPO / "laion_spark" / "report" / name)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_the_pages_inline_their_style_and_script(tmp_path):
    points = pd.DataFrame({"URL": ["https://a/1"], "TEXT": ["a"], "AESTHETIC_SCORE": [7.0], "x_nn5": [0.0]})
    points["y_nn5"] = 1.0
    page = write_map_page(MapData(points, [5], total_rows=1), tmp_path / "map.html").read_text(encoding="utf-8")
    assert f"<style>\n{asset('map.css')}</style>" in page and f"<script>\n{asset('map.js')}</script>" in page
    report = render_report(ReportData(lake_dir=str(tmp_path)), {}, [])
    assert f"<style>\n{asset('report.css')}</style>" in report


@pytest.mark.dist
def test_the_wheel_and_the_zip_carry_the_front_end_files(dist, tmp_path):
    wheel, py_files = dist
    for built in (wheel, py_files):
        with zipfile.ZipFile(built) as archive:
            names = set(archive.namelist())
        assert {f"laion_spark/report/{n}" for n in FRONT_END} <= names, built.name
    # read from the zip, as under spark-submit --py-files
    read = subprocess.run(
        [
            sys.executable,
            "-c",
            "import laion_spark.report.assets as a; print(a.__file__); print(len(a.asset('map.js')))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(py_files)),
    )
    where, chars = read.stdout.split()
    assert where.startswith(str(py_files)) and int(chars) == len(asset("map.js")), read.stderr

"""The report and the caption map against hostile values: control characters are written out, never copied raw;
one huge caption is capped in its cell (the rest on demand) so the page stays small; a non-finite score is drawn
unscored, never with the top colour."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd

from laion_spark.report.data import ReportData
from laion_spark.report.html import CAPTION_CHARS, FULL_CHARS, render_report
from laion_spark.report.map import MapData, map_payload

RAW_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _samples(captions: list[str], urls: list[str]) -> pd.DataFrame:
    n = len(captions)
    return pd.DataFrame(
        {
            "bucket_order": [6] * n,
            "pick": list(range(1, n + 1)),
            "collection": ["laion2B-en\x00"] * n,
            "aesthetic": [5.5] * n,
            "TEXT": captions,
            "URL": urls,
        }
    )


def test_control_characters_are_written_out_and_a_huge_caption_is_capped(tmp_path) -> None:
    huge = "word " * 200_000  # 1 MB
    captions = [huge, "nul\x00 esc\x1b[31m bell\x07 c1\x85 del\x7f", "plain"]
    urls = ["https://example.com/" + "a" * 1_000_000, "https://example.com/x\x00y", "javascript:alert(1)"]
    data = ReportData(lake_dir="/lake\x00", samples=_samples(captions, urls), notes=["note\x1b"])
    page = render_report(data, {}, [])
    assert not RAW_CONTROL.search(page)
    assert "nul\\x00 esc\\x1b[31m bell\\x07 c1\\x85 del\\x7f" in page
    assert len(page) < 2 * FULL_CHARS + 6 * 500 + 20_000  # not the megabytes of the values
    assert '<details class="long"><summary>' + huge[:CAPTION_CHARS] in page
    assert f"({len(huge):,} characters" in page and "more characters not kept in this page" in page
    assert 'href="javascript:' not in page and 'href="https://example.com/aaaa' not in page


def test_a_non_finite_score_is_unscored_on_the_map() -> None:
    points = pd.DataFrame(
        {
            "URL": ["u"] * 4,
            "TEXT": ["t"] * 4,
            "AESTHETIC_SCORE": [5.0, np.inf, -np.inf, np.nan],
            "x_nn10": [0.0, 1.0, 2.0, 3.0],
            "y_nn10": [0.0, 1.0, 2.0, 3.0],
        }
    )
    payload = map_payload(MapData(points, [10], 4))
    scores = np.frombuffer(base64.b64decode(payload["score"]), dtype="<f4")
    assert scores[0] == 5.0 and np.isnan(scores[1:]).all()

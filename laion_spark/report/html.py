"""The report page: one self-contained HTML file (``report.css`` inlined, charts as base64 data URIs).

Every value from the lake goes through :func:`_e`: HTML-escaped, with control characters (NUL, ESC ...) and lone
surrogates shown as ``\\xNN`` / ``\\uNNNN`` text instead of copied raw. A caption shows its first
:data:`CAPTION_CHARS` characters, the rest on demand (a closed ``<details>``, which the browser does not lay out),
kept up to :data:`FULL_CHARS`; a URL shows :data:`~.map.URL_CHARS` and links only when it is URL-sized, so that
one huge value cannot make the page slow.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..aesthetic.buckets import BUCKETS, UNIT_BUCKETS, laion_form
from .assets import asset
from .data import ReportData
from .map import URL_CHARS

#: Characters of a caption shown in a table cell; the rest opens on demand.
CAPTION_CHARS = 300
#: Characters of a value kept in the page at most (the rest: ``laion-spark sql`` shows it).
FULL_CHARS = 20_000
#: Longest URL made a link (browsers and servers refuse far shorter ones).
HREF_CHARS = 8_192
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _e(value: object) -> str:
    """``value`` as HTML text: escaped, control characters and lone surrogates written out (``\\x00``)."""
    return html.escape(_UNPRINTABLE.sub(_visible, str(value)), quote=True)


def _long_text(text: str, shown: int = CAPTION_CHARS) -> str:
    """HTML of a caption: its first ``shown`` characters, the rest (up to :data:`FULL_CHARS`) on demand."""
    if len(text) <= shown:
        return _e(text)
    kept = text[:FULL_CHARS]
    cut = len(text) - len(kept)
    beyond = (
        f'<span class="muted">... {cut:,} more characters not kept in this page (laion-spark sql shows them)</span>'
        if cut
        else ""
    )
    return (
        f'<details class="long"><summary>{_e(text[:shown])}... <span class="muted">({len(text):,} characters: '
        f'show all)</span></summary><div class="full">{_e(kept)}{beyond}</div></details>'
    )


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure(path: Path, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="{_png_data_uri(path)}" alt="{_e(alt)}" data-file="{_e(path.name)}">'
        f"<figcaption>{caption} <span class='muted'>(also <code>{_e(path.name)}</code>)</span></figcaption></figure>"
    )


def _table(headers: list[tuple[str, bool]], rows: list[list[str]]) -> str:
    """``headers`` are ``(text, numeric)``; ``rows`` hold already escaped cell HTML."""

    def cell(tag: str, content: str, numeric: bool) -> str:
        return f'<{tag} class="num">{content}</{tag}>' if numeric else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", _e(text), num) for text, num in headers)
    body = "".join(
        "<tr>" + "".join(cell("td", content, num) for content, (_, num) in zip(row, headers, strict=True)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _heads_section(data: ReportData) -> str:
    if not data.heads:
        return ""
    named = ", ".join(f"<code>{_e(h)}</code>" for h in data.heads)
    text = f"<p>Scores in this lake come from head {named} (from <code>aesthetic_tags.head</code>).</p>"
    synthetic = [h for h in data.heads if "synthetic" in h.lower()]
    if synthetic:
        text += (
            '<div class="notice"><strong>Synthetic head.</strong> '
            f"{', '.join(f'<code>{_e(h)}</code>' for h in synthetic)} is a synthetic head written by "
            "<code>laion-spark sample</code> to exercise the pipeline: its scores are not aesthetic judgements, "
            "and the shape below only mimics LAION's.</div>"
        )
    return text


def _cards(data: ReportData) -> str:
    cards = []
    if data.distribution is not None:
        cards.append(("rows scored", int(data.distribution["count"].sum())))
    if data.funnel is not None:
        totals = data.funnel.groupby("stage", sort=False)["rows"].sum()
        cards += [(stage, int(rows)) for stage, rows in totals.items()]
    if not cards:
        return ""
    items = "".join(
        f'<div class="card"><div class="value">{value:,}</div><div class="label">{_e(label)}</div></div>'
        for label, value in cards
    )
    return f'<div class="cards">{items}</div>'


def _distribution_section(data: ReportData, charts: Mapping[str, Path], log_scale: bool) -> str:
    if data.distribution is None:
        return ""
    figures = "".join(
        _figure(path, f"score distribution of {key.split(':', 1)[1]}", _e(key.split(":", 1)[1]))
        for key, path in charts.items()
        if key.startswith("distribution:")
    )
    return (
        "<h2>Score distribution</h2>"
        "<p class='muted'>Rows of <code>aesthetic_tags</code> per unit score bucket; the line is LAION's published "
        f"laion2B-en distribution scaled to the same number of rows, for comparing shapes{' (log scale)' if log_scale else ''}.</p>"
        f'<div class="grid">{figures}</div>' + _distribution_table(data.distribution)
    )


def _distribution_table(table: pd.DataFrame) -> str:
    """Buckets down, one count and share column pair per (collection, head); LAION's form under it."""
    pivot = table.pivot_table(index="bucket", columns=["collection", "head"], values="count", aggfunc="sum")
    pivot = pivot.reindex([b for b in BUCKETS if b in UNIT_BUCKETS or pivot.loc[b].sum() > 0])
    totals = table.groupby(["collection", "head"])["count"].sum()
    headers = [("bucket", False)]
    for collection, head in pivot.columns:
        headers += [(f"{collection} · {head}", True), ("share", True)]
    rows = []
    for bucket, values in pivot.iterrows():
        cells = [_e(bucket)]
        for key, count in values.items():
            total = int(totals[key])
            cells += [f"{int(count):,}", f"{int(count) / total:.2%}" if total else "-"]
        rows.append(cells)
    rows.append(
        ["<strong>rows</strong>", *(c for key in pivot.columns for c in (f"<strong>{int(totals[key]):,}</strong>", ""))]
    )
    forms = "".join(
        f"<li>{_e(collection)} · {_e(head)}: <code>{_e(laion_form(dict(zip(group['bucket'], group['count'].astype(int), strict=True))))}</code></li>"
        for (collection, head), group in table.groupby(["collection", "head"], sort=True)
    )
    return _table(headers, rows) + f"<p>In LAION's published form:</p><ul class='forms'>{forms}</ul>"


def _funnel_section(data: ReportData, charts: Mapping[str, Path], stages: list[str]) -> str:
    if data.funnel is None:
        return ""
    parts = ["<h2>Subset funnel</h2>"]
    if "funnel" in charts:
        parts.append(_figure(charts["funnel"], "subset funnel", "Rows kept at each step, by collection."))
    table = data.funnel.pivot_table(index="stage", columns="collection", values="rows", aggfunc="sum", fill_value=0)
    table = table.reindex(stages, fill_value=0)
    joined = int(table.iloc[0].sum()) if len(table) else 0
    headers = [("stage", False)] + [(c, True) for c in table.columns] + [("total", True), ("of joined", True)]
    rows = []
    for stage, values in table.iterrows():
        total = int(values.sum())
        share = f"{total / joined:.2%}" if joined else "-"
        rows.append([_e(stage), *(f"{int(v):,}" for v in values), f"{total:,}", share])
    parts.append(_table(headers, rows))
    return "".join(parts)


def _url_cell(url: object) -> str:
    if not isinstance(url, str):
        return "<span class='muted'>(no URL)</span>"
    shown = url[:URL_CHARS] + ("..." if len(url) > URL_CHARS else "")
    if url.startswith(("http://", "https://")) and len(url) <= HREF_CHARS and not _UNPRINTABLE.search(url):
        link = f'<a href="{_e(url)}" rel="noopener noreferrer nofollow">{_e(shown)}</a>'
        return f'<span class="url" title="{_e(shown)}">{link}</span>'
    return f'<span class="url" title="{_e(shown)}">{_e(shown)}</span>'


def _samples_section(data: ReportData) -> str:
    if data.samples is None or data.samples.empty:
        return ""
    rows = [
        [
            _e(BUCKETS[row.bucket_order]) if row.pick == 1 else "",
            f"{row.aesthetic:.2f}",
            _e(row.collection),
            _long_text(str(row.TEXT)),
            _url_cell(row.URL),
        ]
        for row in data.samples.itertuples()
    ]
    headers = [("bucket", False), ("score", True), ("collection", False), ("caption", False), ("URL", False)]
    return (
        "<h2>Sample captions per bucket</h2>"
        "<p class='muted'>A few rows of <code>joined</code> per score bucket, picked by a seeded hash.</p>"
        + _table(headers, rows)
    )


def _embeddings_section(data: ReportData) -> str:
    if data.embeddings is None or data.embeddings.empty:
        return ""
    parts = [
        "<h2>Aesthetic embeddings</h2>",
        "<p class='muted'>Rows averaged into each rating bucket (<code>rating0</code> ... <code>rating9</code>).</p>",
    ]
    for (model, head), group in data.embeddings.groupby(["model", "head"], sort=True):
        counts = dict(zip(group["bucket"].astype(int), group["count"].astype(int), strict=True))
        headers = [("model / head", False)] + [(f"rating{b}", True) for b in range(10)]
        parts.append(_table(headers, [[f"{_e(model)} / {_e(head)}", *(f"{counts.get(b, 0):,}" for b in range(10))]]))
    return "".join(parts)


def _runs_section(data: ReportData) -> str:
    if data.runs is None or data.runs.empty:
        return ""
    rows = []
    for (_run_id, job, collection, target, engine), group in data.runs.groupby(
        ["run_id", "job", "collection", "target", "engine"], sort=False, dropna=False
    ):
        finished = pd.Timestamp(group["finished_at"].max()).strftime("%Y-%m-%d %H:%M:%S UTC")
        metrics = "".join(
            f"<li>{_e(m)} <strong>{int(v):,}</strong></li>"
            for m, v in zip(group["metric"], group["value"], strict=True)
        )
        metrics = f'<ul class="metrics">{metrics}</ul>'
        rows.append([_e(job), _e(collection), _e(target), _e(engine), _e(finished), metrics])
    headers = [
        ("job", False),
        ("collection", False),
        ("wrote", False),
        ("engine", False),
        ("finished", False),
        ("counts", False),
    ]
    return "<h2>Run summary</h2><p class='muted'>Latest run of each job from <code>runs</code>.</p>" + _table(
        headers, rows
    )


def _umap_section(charts: Mapping[str, Path], map_page: Path | None) -> str:
    figures = "".join(
        _figure(path, f"UMAP layout {key.split(':', 1)[1]}", f"{_e(key.split(':', 1)[1])}, coloured by aesthetic score")
        for key, path in charts.items()
        if key.startswith("umap:")
    )
    if not figures and map_page is None:
        return ""
    link = (
        f'<p><a href="{_e(map_page.name)}">Open the interactive caption map</a> (pan, zoom, caption and URL on '
        "hover; a file beside this page).</p>"
        if map_page is not None
        else ""
    )
    return (
        "<h2>UMAP of the captions</h2>"
        "<p class='muted'>Rows of <code>umap</code>: CLIP text embeddings projected to 64-d and laid out by UMAP, "
        "one layout per n_neighbors, rendered with datashader (rank-equalised colour).</p>"
        f'{link}<div class="grid">{figures}</div>'
    )


def render_report(
    data: ReportData,
    charts: Mapping[str, Path],
    stages: list[str],
    log_scale: bool = False,
    map_page: Path | None = None,
) -> str:
    """The whole HTML page; ``map_page`` is the caption map beside it, linked when given."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = "".join(f'<div class="notice">{_e(n)}</div>' for n in data.notes)
    body = "".join(
        [
            "<h1>LAION-Aesthetics run report</h1>",
            f"<p class='meta'>Lake <code>{_e(data.lake_dir)}</code> · generated {generated}</p>",
            _heads_section(data),
            notes,
            _cards(data),
            _distribution_section(data, charts, log_scale),
            _funnel_section(data, charts, stages),
            _samples_section(data),
            _embeddings_section(data),
            _umap_section(charts, map_page),
            _runs_section(data),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>laion-spark report</title>\n<style>\n{asset('report.css')}</style>\n</head>\n<body><main>\n{body}\n</main></body>\n</html>\n"
    )

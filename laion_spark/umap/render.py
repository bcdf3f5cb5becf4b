"""PNG renders of the UMAP layouts with datashader: every point binned, coloured by its mean aesthetic score.

``Canvas.points`` + ``mean(AESTHETIC_SCORE)`` per pixel, then ``tf.shade`` with
histogram equalisation (``how="eq_hist"``) so that millions of points stay
readable; sparse layouts get their points spread a little (``dynspread``).
pillow writes the PNG (datashader's ``to_pil`` needs it and does not declare it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..lake.finite import finite_or_nan
from .errors import UmapError
from .params import RENDER_PIXELS, coordinate_columns

_log = logging.getLogger("laion_spark.umap")
#: colorcet's perceptually uniform blue-green-yellow map (viridis-like), shared with the map page.
PALETTE = "bgy"
BACKGROUND = "#101217"


#: The palette's darkest colours are left out: they vanish on the dark background.
_DARKEST = 48
#: Share of points, at each end of an axis, that may fall outside the render (UMAP leaves a few far outliers).
_OUTLIERS = 0.001


def palette() -> list[str]:
    """The ``#rrggbb`` colours of :data:`PALETTE` bright enough for the background, low score first."""
    import colorcet

    return list(colorcet.palette[PALETTE][_DARKEST:])


def _padded_range(values: np.ndarray) -> tuple[float, float]:
    low, high = (float(v) for v in np.quantile(values, [_OUTLIERS, 1 - _OUTLIERS]))
    pad = (high - low) * 0.05 or 1.0
    return low - pad, high + pad


def render_layout(
    x: np.ndarray, y: np.ndarray, score: np.ndarray, path: str | Path, pixels: int = RENDER_PIXELS
) -> Path:
    """Write a ``pixels`` x ``pixels`` PNG of the points ``(x, y)`` coloured by mean ``score``; return its path.

    Rows with a NaN coordinate are left out, and so are the 0.1 % most extreme points of each axis end (the
    view frames the bulk of the layout); a NaN or infinite score leaves its pixel unshaded (never the top colour:
    :mod:`laion_spark.lake.finite`).
    """
    import datashader as ds
    import datashader.transfer_functions as tf

    points = pd.DataFrame(
        {
            "x": np.asarray(x, np.float32),
            "y": np.asarray(y, np.float32),
            "score": finite_or_nan(score).astype(np.float32),
        }
    )
    points = points[np.isfinite(points["x"]) & np.isfinite(points["y"])]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if points.empty:
        raise UmapError(f"{path.name}: no points with finite coordinates to render")
    canvas = ds.Canvas(
        plot_width=pixels,
        plot_height=pixels,
        x_range=_padded_range(points["x"].to_numpy()),
        y_range=_padded_range(points["y"].to_numpy()),
    )
    agg = canvas.points(points, "x", "y", agg=ds.mean("score"))
    image = tf.shade(agg, cmap=palette(), how="eq_hist")
    image = tf.set_background(tf.dynspread(image, threshold=0.8, max_px=3), BACKGROUND)
    image.to_pil().save(path)
    return path


def render_layouts(
    points: pd.DataFrame, neighbors: Sequence[int], folder: str | Path, pixels: int = RENDER_PIXELS
) -> dict[int, Path]:
    """One ``umap_nn<k>.png`` per n_neighbors in ``folder`` from a frame with ``AESTHETIC_SCORE`` and the pairs."""
    written = {}
    for n in neighbors:
        x, y = coordinate_columns([n])
        path = Path(folder) / f"umap_nn{n}.png"
        written[n] = render_layout(
            points[x].to_numpy(), points[y].to_numpy(), points["AESTHETIC_SCORE"].to_numpy(), path, pixels
        )
        _log.info("umap nn%d: rendered %d points to %s", n, len(points), path)
    return written

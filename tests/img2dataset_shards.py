"""Real img2dataset shards for the tests: images served on 127.0.0.1, downloaded by img2dataset from PyPI.

:func:`serve` serves a folder over HTTP on the loopback address; :func:`write_site` writes the images and the
URL list (LAION's ``URL``/``TEXT`` columns, with ``similarity`` and ``LANGUAGE`` to keep as additional columns);
:func:`run_img2dataset` runs img2dataset's own command line over it. Among the URLs: one that answers 404
(``failed_to_download``), a JPEG cut to a third of its bytes and random bytes named ``.jpg`` (both
``failed_to_resize`` when img2dataset re-encodes: OpenCV cannot decode them; stored as they are, and failed
in the tar by score-images, when img2dataset is told not to re-encode), a PNG with an alpha channel (re-encoded
to JPEG), and rendered JPEGs of several sizes (so that the original size, LAION's WIDTH/HEIGHT, differs from
the resized one).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from laion_spark.sample.photos import ICON, sample_file
from laion_spark.sample.webdataset import render_image

#: What each URL of the list is, in list order (img2dataset shards them in this order).
URLS = ("ok", "ok", "missing", "ok", "ok", "cut", "ok", "ok", "ok", "junk", "png", "ok")
#: The kinds img2dataset itself fails (status != success) when it re-encodes, and the one it fails without.
FAIL_WHEN_REENCODED = {"missing": "failed_to_download", "cut": "failed_to_resize", "junk": "failed_to_resize"}
FAIL_WITHOUT_REENCODING = {"missing": "failed_to_download"}
#: score-images' error kind of the images stored as they are (``--disable_all_reencoding``).
FAILED_IN_TAR = {"cut": "truncated_image", "junk": "undecodable_image"}


@dataclass(frozen=True)
class Site:
    """The served folder and the URL list: ``sizes`` maps an ``ok`` file name to its original (width, height)."""

    folder: Path
    url_list: Path
    names: tuple[str, ...]
    sizes: dict[str, tuple[int, int]]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


def write_site(folder: Path, base_url: str, seed: int = 0) -> Site:
    """The images of :data:`URLS` in ``folder`` (``missing`` is not written: 404) and ``urls.parquet`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names, sizes = [], {}
    for index, what in enumerate(URLS):
        name = f"{index:02d}_{what}.{'png' if what == 'png' else 'jpg'}"
        names.append(name)
        if what == "ok":
            size = (96 + 8 * index, 72 + 5 * index)
            (folder / name).write_bytes(_jpeg(render_image(rng, *size)))
            sizes[name] = size
        elif what == "cut":
            data = _jpeg(render_image(rng, 200, 150))
            (folder / name).write_bytes(data[: len(data) // 3])
        elif what == "junk":
            (folder / name).write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
        elif what == "png":
            (folder / name).write_bytes(sample_file(ICON))
    table = pa.table(
        {
            "URL": [f"{base_url}/{n}" for n in names],
            "TEXT": [f"caption {i}: {what} ✓" for i, what in enumerate(URLS)],
            "similarity": [round(0.25 + 0.01 * i, 4) for i in range(len(URLS))],
            "LANGUAGE": ["en" if i % 3 else "de" for i in range(len(URLS))],
        }
    )
    url_list = folder.parent / f"{folder.name}-urls.parquet"
    pq.write_table(table, url_list)
    return Site(folder, url_list, tuple(names), sizes)


def img2dataset_command(url_list: Path, out: Path, per_shard: int, *, reencode: bool) -> list[str]:
    """img2dataset's own command line over ``url_list`` into ``out`` (webdataset tars + parquet + stats)."""
    args = {
        "url_list": str(url_list),
        "input_format": "parquet",
        "url_col": "URL",
        "caption_col": "TEXT",
        "output_format": "webdataset",
        "output_folder": str(out),
        "processes_count": 1,
        "thread_count": 4,
        "number_sample_per_shard": per_shard,
        "save_additional_columns": '["similarity","LANGUAGE"]',
        "timeout": 5,
        "retries": 0,
        "enable_wandb": False,
        "distributor": "multiprocessing",
    }
    if reencode:
        args["image_size"] = 64  # border mode: the stored image is 64 x 64, the original size is kept apart
    else:
        args["disable_all_reencoding"] = True  # bytes stored as downloaded: the cut JPEG and the junk reach the tar
    return [str(Path(sys.executable).parent / "img2dataset"), *[f"--{k}={v}" for k, v in args.items()]]


def run_img2dataset(commands: list[list[str]], timeout: float = 240) -> None:
    """Run img2dataset commands at once (no update check, no wandb); ``RuntimeError`` with the output if one fails."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"}
    procs = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) for c in commands
    ]
    for command, proc in zip(commands, procs, strict=True):
        output, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{output[-3000:]}")


def shard_rows(folder: Path) -> dict[str, list[dict]]:
    """Each shard's img2dataset parquet rows by tar name (``00000.tar`` -> rows)."""
    return {p.with_suffix(".tar").name: pq.read_table(p).to_pylist() for p in sorted(folder.glob("*.parquet"))}


def stats(folder: Path) -> dict[str, dict]:
    """Each shard's ``_stats.json`` by tar name."""
    return {
        p.name.replace("_stats.json", ".tar"): json.loads(p.read_text()) for p in sorted(folder.glob("*_stats.json"))
    }

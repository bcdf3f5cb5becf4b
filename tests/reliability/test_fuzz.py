"""Fuzzing every reader of a user's file: mangled bytes give a result or an InputError, never anything else.

Each case starts from a valid file (parquet, ``.npy``, head ``.pth``, KV, YAML, webdataset tar) and truncates it, flips bytes in it or splices random bytes into it
(hypothesis, seeded by its database), then calls the reader the commands use. Any exception that is not
an :class:`~laion_spark.errors.InputError` (which the CLI turns into one line and exit 2) fails the test,
and so does a call that runs longer than :data:`PER_CALL_SECONDS` (an endless loop). CI runs
:data:`EXAMPLES` cases per reader; ``LAION_SPARK_FUZZ_EXAMPLES=5000`` runs more.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laion_spark.aesthetic.heads import load_head
from laion_spark.aesthetic.shards import Shard
from laion_spark.clip.images import ROWS_SCHEMA
from laion_spark.clip.reader import RECORD_FIELDS, TarShard
from laion_spark.errors import InputError
from laion_spark.ingest.sources import read_footers
from laion_spark.kv.reader import KV
from laion_spark.lake.tables import check_data_files
from laion_spark.pipeline.config import load_pipeline_config

EXAMPLES = int(os.environ.get("LAION_SPARK_FUZZ_EXAMPLES", "40"))
PER_CALL_SECONDS = 20
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expired(*_: object) -> None:
        raise TimeoutError(f"a reader ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def mangled(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` truncated, with bytes flipped, or with random bytes spliced in (one or more of them)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "splice"]))
        if kind == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif kind == "flip" and data:
            for _ in range(draw(st.integers(1, 8))):
                at = draw(st.integers(0, len(data) - 1))
                data[at] ^= draw(st.integers(1, 255))
        else:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


def only_input_errors(read: Callable[[Path], object], path: Path, data: bytes) -> None:
    path.write_bytes(data)
    with time_limit(PER_CALL_SECONDS):
        try:
            read(path)
        except InputError as err:
            assert str(err).strip(), "an InputError needs a message naming the culprit"


def _parquet() -> bytes:
    table = pa.table({"URL": ["http://a/1.jpg", None], "TEXT": ["a cat", "ü"], "WIDTH": pa.array([1, 2], pa.int32())})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _npy() -> bytes:
    sink = io.BytesIO()
    np.save(sink, np.random.default_rng(0).normal(size=(16, 8)).astype(np.float16))
    return sink.getvalue()


def _head() -> bytes:
    sink = io.BytesIO()
    torch.save({"weight": torch.ones(1, 8), "bias": torch.zeros(1)}, sink)
    return sink.getvalue()


def _kv() -> bytes:
    return b"".join(struct.pack("q", k) + struct.pack("e", k / 7) for k in range(-20, 20, 3))


def _tar() -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key in ("000000000", "000000001"):
            for suffix, data in (
                ("jpg", b"\xff\xd8\xff\xe0" + bytes(64)),
                ("txt", "a cat ü".encode()),
                ("json", json.dumps({"url": f"http://a/{key}.jpg", "caption": "a cat"}).encode()),
            ):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return sink.getvalue()


def _read_tar(path: Path) -> None:
    """The webdataset reader never raises: a broken member or tail becomes an error row, and every value a row
    keeps fits its column (the key, caption and error as UTF-8 text, the record's fields as their types)."""
    with TarShard(path) as shard:
        rows = list(shard.samples())
    assert len(rows) == len(shard)
    for name in ("key", "caption", "error"):
        pa.array([getattr(r, name) for r in rows], pa.string())
    for name in RECORD_FIELDS:
        pa.array([r.record.get(name) for r in rows], ROWS_SCHEMA.field(name).type)


def _check_kv(path: Path) -> None:
    kv = KV(path)
    kv.verify()
    kv.get_batch(np.arange(-30, 30))


def _parquet_table(path: Path) -> None:
    folder = path.with_suffix(".table")
    folder.mkdir(exist_ok=True)
    (folder / "part-0.parquet").write_bytes(path.read_bytes())
    check_data_files(folder)


READERS = {
    "parquet-footer": (_parquet, lambda p: read_footers(p, "metadata")),
    "parquet-lake-table": (_parquet, _parquet_table),
    "npy-header": (_npy, lambda p: Shard(0, str(p), "").shape()),
    "head-pth": (_head, load_head),
    "kv-file": (_kv, _check_kv),
    "pipeline-yaml": (lambda: (REPO / "conf" / "pipeline.yaml").read_bytes(), load_pipeline_config),
    "webdataset-tar": (_tar, _read_tar),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_a_mangled_file_gives_a_result_or_an_input_error(reader: str, tmp_path: Path) -> None:
    make, read = READERS[reader]
    original = make()
    read_path = tmp_path / f"case.{reader.split('-')[0]}"
    only_input_errors(read, read_path, original)  # the valid file reads

    @FUZZ
    @given(data=mangled(original))
    def case(data: bytes) -> None:
        only_input_errors(read, read_path, data)

    case()


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["laughs"]'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join([*lines, "subsets: *a11"]) + "\n")
    with time_limit(5), pytest.raises(InputError, match="aliases"):
        load_pipeline_config(bomb)

"""laion_spark.kv.concatenate: the fragments joined byte for byte, whether the kernel copies them, refuses, or
copies part of a file and stops."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from laion_spark.kv import concatenate as concat_module
from laion_spark.kv.concatenate import concatenate

_real_copy = getattr(os, "copy_file_range", None)


def _fragments(folder: Path, sizes: list[int]) -> tuple[list[Path], bytes]:
    paths, whole = [], b""
    for n, size in enumerate(sizes):
        data = bytes((n * 7 + i) % 251 for i in range(size))
        path = folder / f"range-{n:06d}.kv"
        path.write_bytes(data)
        paths.append(path)
        whole += data
    return paths, whole


def _refused(*_args: object) -> int:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


def _in_pieces(source: int, sink: int, count: int, offset_src: int, offset_dst: int) -> int:
    """As the kernel may: fewer bytes than asked (at most 1,000) per call."""
    data = os.pread(source, min(count, 1000), offset_src)
    return os.pwrite(sink, data, offset_dst)


def _stops_part_way(source: int, sink: int, count: int, offset_src: int, offset_dst: int) -> int:
    """Copies 2,000 bytes of a file in pieces, then reports nothing more copied (0)."""
    return 0 if offset_src >= 2000 else _in_pieces(source, sink, count, offset_src, offset_dst)


@pytest.mark.parametrize(
    "kernel",
    [
        pytest.param(_real_copy, id="in-the-kernel", marks=pytest.mark.skipif(_real_copy is None, reason="not Linux")),
        pytest.param(_refused, id="refused-by-the-kernel"),
        pytest.param(_in_pieces, id="kernel-copies-in-pieces"),
        pytest.param(_stops_part_way, id="kernel-stops-part-way"),
        pytest.param(None, id="no-copy_file_range"),
    ],
)
def test_the_fragments_are_joined_in_order_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: object
) -> None:
    paths, whole = _fragments(tmp_path, [10_000, 3, 0, 70_001, 1])
    monkeypatch.setattr(concat_module, "COPY_BUFFER", 4096)  # several buffered rounds per fragment
    if kernel is None:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    else:
        monkeypatch.setattr(os, "copy_file_range", kernel, raising=False)
    out = tmp_path / "out.kv.partial"
    concatenate(out, paths)
    assert out.read_bytes() == whole
    assert not paths[0].exists()  # the first one was moved, not copied


def test_an_error_the_buffer_cannot_help_with_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, _ = _fragments(tmp_path, [10, 10])

    def no_space(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", no_space, raising=False)
    with pytest.raises(OSError, match="No space left"):
        concatenate(tmp_path / "out.kv", paths)


def test_no_fragment_writes_an_empty_file(tmp_path: Path) -> None:
    concatenate(tmp_path / "out.kv", [])
    assert (tmp_path / "out.kv").read_bytes() == b""

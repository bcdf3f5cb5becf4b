"""Webdataset tars as img2dataset writes them: samples by key, and every kind of bad member as an error row."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from laion_spark.clip.reader import TarShard, error_kind


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _record(url: str, **extra: object) -> bytes:
    return json.dumps({"url": url, **extra}).encode()


def test_members_group_by_key_even_when_not_adjacent(tmp_path: Path) -> None:
    tar = _tar(
        tmp_path / "a.tar",
        [
            ("dir/001.jpg", b"jpeg-1"),
            ("dir/002.txt", "deux ✓".encode()),
            ("dir/001.txt", b"one"),
            ("dir/002.WEBP", b"webp-2"),
            ("dir/001.json", _record("https://x/1", width=64, height=80)),
            ("dir/002.json", _record("https://x/2")),
        ],
    )
    with TarShard(tar) as shard:
        samples = list(shard.samples())
    assert len(shard) == 2
    assert [(s.key, s.image, s.image_type, s.caption, s.url, s.error) for s in samples] == [
        ("dir/001", b"jpeg-1", "jpg", "one", "https://x/1", None),
        ("dir/002", b"webp-2", "webp", "deux ✓", "https://x/2", None),
    ]
    assert (samples[0].size("width"), samples[0].size("height"), samples[1].size("width")) == (64, 80, None)


def test_each_bad_sample_is_one_row_with_its_kind(tmp_path: Path) -> None:
    tar = _tar(
        tmp_path / "bad.tar",
        [
            ("a.jpg", b"x"),  # no caption
            ("a.json", _record("https://x/a")),
            ("b.txt", b"no image"),
            ("c.gif", b"GIF89a"),
            ("c.txt", b"gif"),
            ("d.jpg", b"x"),
            ("d.png", b"y"),
            ("d.txt", b"two images"),
            ("e.jpg", b"x"),
            ("e.txt", b"\xff\xfe not utf-8"),
            ("f.jpg", b"x"),
            ("f.txt", b"bad json"),
            ("f.json", b"{not json"),
            ("g.jpg", b"x"),
            ("g.txt", b"json list"),
            ("g.json", b"[1, 2]"),
        ],
    )
    with TarShard(tar) as shard:
        errors = {s.key: s.error for s in shard.samples()}
    assert {k: error_kind(e) for k, e in errors.items()} == {
        "a": "missing_caption",
        "b": "missing_image",
        "c": "unknown_member",
        "d": "unknown_member",
        "e": "bad_metadata",
        "f": "bad_metadata",
        "g": "bad_metadata",
    }
    assert errors["c"] == "unknown_member: c.gif"


def _cut(tmp_path: Path, where: str) -> list[tuple[str, str | None]]:
    tar = _tar(
        tmp_path / "whole.tar",
        [("a.jpg", b"A" * 3000), ("a.txt", b"first"), ("b.jpg", b"B" * 5000), ("b.txt", b"second")],
    )
    data = tar.read_bytes()
    at = {"member": data.index(b"B" * 100) + 1000, "header": data.index(b"B" * 100) - 200, "end": len(data) - 9216}
    (tmp_path / "cut.tar").write_bytes(data[: at[where]])
    with TarShard(tmp_path / "cut.tar") as shard:
        rows = [(s.key, s.error and error_kind(s.error)) for s in shard.samples()]
    assert len(rows) == len(shard)
    return rows


def test_a_tar_cut_inside_a_member_fails_that_sample_and_the_tail(tmp_path: Path) -> None:
    assert _cut(tmp_path, "member") == [("a", None), ("b", "truncated_member"), ("", "unreadable_tar")]


def test_a_tar_cut_inside_a_header_or_its_end_marker_is_not_taken_for_its_end(tmp_path: Path) -> None:
    assert _cut(tmp_path, "header") == [("a", None), ("", "unreadable_tar")]
    assert _cut(tmp_path, "end") == [("a", None), ("b", None), ("", "unreadable_tar")]


def test_a_file_that_is_no_tar_is_one_unreadable_row(tmp_path: Path) -> None:
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar file at all" * 40)
    (tmp_path / "empty.tar").write_bytes(b"")
    for name in ("junk.tar", "empty.tar"):
        with TarShard(tmp_path / name) as shard:
            rows = list(shard.samples())
        assert len(shard) == 1 and [(r.key, error_kind(r.error)) for r in rows] == [("", "unreadable_tar")]


def test_an_empty_valid_tar_has_no_rows(tmp_path: Path) -> None:
    with TarShard(_tar(tmp_path / "none.tar", [])) as shard:
        assert len(shard) == 0 and list(shard.samples()) == []

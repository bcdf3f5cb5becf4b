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
    assert errors["c"] == "unknown_member: bad.tar/c.gif"


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


#: .json members whose fields do not fit their columns (issue 24), each failing its sample as bad_metadata with
#: the reason; the tar and member are named ``hostile.tar/KEY.json``.
HOSTILE_RECORDS = [
    ("width over int32", b'{"width": 2147483648}', "width is 2147483648, not an integer in 0..2147483647"),
    ("negative height", b'{"height": -1}', "height is -1, not an integer"),
    ("width as text", b'{"width": "64"}', 'width is "64", not an integer'),
    ("width as a boolean", b'{"original_width": true}', "original_width is true, not an integer"),
    ("fractional size", b'{"original_height": 64.5}', "original_height is 64.5, not an integer"),
    ("NaN size", b'{"width": NaN}', "width is nan, not an integer"),
    ("huge size", b'{"width": 1' + b"0" * 40 + b"}", "width is 1000000000000000000000000000000000000..., not"),
    ("a 5000-digit size", b'{"width": 1' + b"0" * 5000 + b"}", "Exceeds the limit (4300 digits)"),
    ("url as a number", b'{"url": 5}', "url is 5, not text"),
    ("url with a lone surrogate", b'{"url": "https://x/\\ud800"}', "url holds a lone surrogate"),
    ("status as a list", b'{"status": ["success"]}', 'status is ["success"], not text'),
    ("sha256 as an object", b'{"sha256": {}}', "sha256 is {}, not text"),
    ("exif as a number", b'{"exif": 3}', "exif is 3, not text"),
    ("nested too deep", b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests too deep"),
    ("not UTF-8", b'{"url": "https://x/\xe9"}', "'utf-8' codec can't decode"),
    ("a JSON list", b"[1, 2]", "not a JSON object"),
]


def test_every_record_field_that_does_not_fit_its_column_fails_its_sample_naming_tar_member_and_field(
    tmp_path: Path,
) -> None:
    members = [("good.jpg", b"x"), ("good.txt", b"fine"), ("good.json", _record("https://x/g", width=64, sha256="ab"))]
    for index, (_, record, _) in enumerate(HOSTILE_RECORDS):
        members += [(f"k{index:02d}.jpg", b"x"), (f"k{index:02d}.txt", b"caption"), (f"k{index:02d}.json", record)]
    with TarShard(_tar(tmp_path / "hostile.tar", members)) as shard:
        samples = {s.key: s for s in shard.samples()}
    assert len(samples) == len(HOSTILE_RECORDS) + 1
    good = samples.pop("good")
    assert good.error is None and good.record == {"url": "https://x/g", "width": 64, "sha256": "ab"}
    for index, (case, _, reason) in enumerate(HOSTILE_RECORDS):
        sample = samples[f"k{index:02d}"]
        assert sample.error.startswith(f"bad_metadata: hostile.tar/k{index:02d}.json: "), (case, sample.error)
        assert reason in sample.error, (case, sample.error)
        assert sample.image is None


def test_a_member_name_that_is_not_utf8_fails_its_sample_under_a_printable_key(tmp_path: Path) -> None:
    path = tmp_path / "names.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        for name, data in (("caf\udce9.jpg", b"x"), ("caf\udce9.txt", b"c"), ("ok.jpg", b"x"), ("ok.txt", b"c")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with TarShard(path) as shard:
        rows = {s.key: s.error for s in shard.samples()}
    assert rows == {"caf\\xe9": "bad_metadata: names.tar/caf\\xe9.jpg: the member's name is not UTF-8", "ok": None}
    assert all(key.encode("utf-8") for key in rows)


def _links(path: Path, members: list[tuple[str, bytes | tuple[bytes, str]]]) -> Path:
    """A tar of regular members (``bytes``) and links (``(tarfile.LNKTYPE or SYMTYPE, target)``)."""
    with tarfile.open(path, "w") as tar:
        for name, what in members:
            info = tarfile.TarInfo(name)
            if isinstance(what, tuple):
                info.type, info.linkname = what
                tar.addfile(info)
            else:
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
    return path


def test_hard_and_symbolic_link_members_are_read_through_or_fail_their_sample_never_dropped(tmp_path: Path) -> None:
    hard, sym = tarfile.LNKTYPE, tarfile.SYMTYPE
    tar = _links(
        tmp_path / "links.tar",
        [
            ("dir/a.jpg", b"image-a"),
            ("dir/a.txt", b"caption a"),
            ("dir/b.jpg", (hard, "dir/a.jpg")),  # every member of b is a hard link
            ("dir/b.txt", (hard, "dir/a.txt")),
            ("dir/c.jpg", (sym, "a.jpg")),  # relative to its folder
            ("dir/c.txt", (sym, "b.txt")),  # a symlink to a hard link
            ("dir/d.jpg", (sym, "missing.jpg")),
            ("dir/d.txt", b"dangling"),
            ("dir/e.jpg", (sym, "../../etc/passwd")),
            ("dir/e.txt", b"outside"),
            ("dir/f.jpg", (sym, "f.jpg")),  # a loop
            ("dir/f.txt", b"loop"),
        ],
    )
    with TarShard(tar) as shard:
        rows = {s.key: s for s in shard.samples()}
    assert len(shard) == len(rows) == 6
    for key in ("dir/a", "dir/b", "dir/c"):
        assert (rows[key].error, rows[key].image, rows[key].caption) == (None, b"image-a", "caption a"), key
    assert {k: error_kind(rows[k].error) for k in ("dir/d", "dir/e", "dir/f")} == dict.fromkeys(
        ("dir/d", "dir/e", "dir/f"), "unresolved_link"
    )
    assert "links to 'missing.jpg', which the tar does not hold" in rows["dir/d"].error
    assert "outside the tar" in rows["dir/e"].error and "a loop" in rows["dir/f"].error


def test_a_second_caption_or_record_of_a_key_and_a_fifo_member_fail_the_sample(tmp_path: Path) -> None:
    fifo = tarfile.TarInfo("g.jpg")
    fifo.type = tarfile.FIFOTYPE
    path = tmp_path / "odd.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in (("a.jpg", b"x"), ("a.txt", b"one"), ("a.txt", b"two"), ("b.jpg", b"x"), ("b.txt", b"t")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, data in (("b.json", b"{}"), ("b.json", b'{"url": "u"}'), ("g.txt", b"fifo")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.addfile(fifo)
    with TarShard(path) as shard:
        errors = {s.key: s.error for s in shard.samples()}
    assert errors == {
        "a": "unknown_member: odd.tar/a.txt: a second caption of a",
        "b": "unknown_member: odd.tar/b.json: a second record of b",
        "g": "unknown_member: odd.tar/g.jpg is a fifo",
    }

"""img2dataset's listings (a tar's ``.parquet``) and the embedding folder's claims, without an engine."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_spark.clip.images import ROWS_SCHEMA, account
from laion_spark.clip.listing import (
    Extra,
    ListingError,
    extras_of,
    lake_column,
    listing_of,
    listing_schema,
    read_listing,
    stats_count,
    stats_of,
)
from laion_spark.clip.writer import claim_number, claims, shard_files
from laion_spark.lake.hashing import laion_hash


def _listing(path: Path, **columns: list) -> Path:
    base = {
        "url": ["https://x/0", "https://x/1", "https://x/2"],
        "caption": ["zero", "one", "two"],
        "key": ["000", "001", "002"],
        "status": ["success", "failed_to_download", "success"],
        "error_message": [None, "HTTP Error 404: File not found", None],
        "width": pa.array([64, None, 64], pa.int32()),
        "original_width": pa.array([640, None, 320], pa.int32()),
    }
    pq.write_table(pa.table({**base, **columns}), path)
    return path


def test_a_tar_finds_its_listing_and_stats_beside_it(tmp_path: Path) -> None:
    tar = tmp_path / "00003.tar"
    tar.write_bytes(b"")
    assert (listing_of(tar), stats_of(tar)) == (None, None)
    _listing(tmp_path / "00003.parquet")
    (tmp_path / "00003_stats.json").write_text(json.dumps({"count": 3, "successes": 2}))
    assert (listing_of(tar), stats_of(tar)) == (tmp_path / "00003.parquet", tmp_path / "00003_stats.json")
    assert stats_count(tmp_path / "00003_stats.json") == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "not img2dataset's stats"), (b'{"count": "3"}', "count is '3'"), (b"[]", "not img2dataset's")],
)
def test_stats_that_are_not_img2dataset_s_are_refused_naming_the_file(tmp_path: Path, content, message) -> None:
    (tmp_path / "0_stats.json").write_bytes(content)
    with pytest.raises(ListingError, match=message) as caught:
        stats_count(tmp_path / "0_stats.json")
    assert str(tmp_path / "0_stats.json") in str(caught.value)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"key": None}, r"lacks img2dataset.s column\(s\) key"),
        ({"width": ["64", None, "64"]}, "column width is string, img2dataset writes integers"),
        ({"url": [1, 2, 3]}, "column url is int64, img2dataset writes text"),
    ],
)
def test_a_listing_that_is_not_img2dataset_s_is_refused_naming_it(tmp_path: Path, columns, message) -> None:
    path = tmp_path / "00000.parquet"
    if columns.get("key", 0) is None:
        pq.write_table(pa.table({"url": ["u"], "status": ["success"]}), path)
    else:
        _listing(path, **columns)
    with pytest.raises(ListingError, match=message) as caught:
        listing_schema(path)
    assert str(path) in str(caught.value)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ListingError, match="is not readable parquet"):
        listing_schema(tmp_path / "junk.parquet")


def test_additional_columns_unite_across_listings_and_get_lake_names(tmp_path: Path) -> None:
    one = _listing(tmp_path / "1.parquet", similarity=[0.1, 0.2, 0.3], LANGUAGE=["en", None, "de"])
    two = _listing(
        tmp_path / "2.parquet", similarity=pa.array([None] * 3, pa.null()), hash=[1, 2, 3], **{"a b": [1.5, 2, 3]}
    )
    extras = extras_of({one: listing_schema(one), two: listing_schema(two)}, ["hash", "WIDTH", "model"])
    assert extras == (
        Extra("similarity", "similarity", pa.float64()),
        Extra("LANGUAGE", "LANGUAGE", pa.string()),
        Extra("hash", "img2dataset_hash", pa.int64()),
        Extra("a b", "a_b", pa.float64()),
    )
    assert lake_column("width", ["WIDTH"]) == "img2dataset_width"
    three = _listing(tmp_path / "3.parquet", similarity=["high", "low", "low"])
    with pytest.raises(ListingError, match=r"additional column similarity is string, but double in .*1\.parquet"):
        extras_of({one: listing_schema(one), three: listing_schema(three)}, [])


def test_read_listing_casts_and_refuses_sizes_out_of_int32_and_keys_twice(tmp_path: Path) -> None:
    extras = (Extra("similarity", "similarity", pa.float64()), Extra("tags", "tags", pa.string()))
    path = _listing(tmp_path / "a.parquet", similarity=pa.array([1, 2, 3], pa.float32()), tags=[["a"], [], None])
    table = read_listing(path, extras)
    assert table.column("height").null_count == 3 and table.column("sha256").null_count == 3
    assert table.column("tags").to_pylist() == ['["a"]', "[]", None]
    assert table.schema.field("similarity").type == pa.float64()
    big = _listing(tmp_path / "big.parquet", width=pa.array([64, 2**31, 1], pa.int64()))
    with pytest.raises(pa.ArrowInvalid, match="2147483648 not in range"):
        read_listing(big, ())
    twice = _listing(tmp_path / "twice.parquet", key=["000", "001", "000"])
    with pytest.raises(ValueError, match="key '000' is listed 2 times"):
        read_listing(twice, ())


def _tar_rows(keys: list[str], errors: list[str | None]) -> pa.Table:
    n = len(keys)
    columns = {name: pa.nulls(n, ROWS_SCHEMA.field(name).type) for name in ROWS_SCHEMA.names}
    columns |= {
        "key": pa.array(keys, pa.string()),
        "caption": pa.array([f"tar caption {k}" for k in keys], pa.string()),
        "url": pa.array([f"https://json/{k}" for k in keys], pa.string()),
        "error": pa.array(errors, pa.string()),
        "before_tar": pa.array([False] * n),
        "aesthetic": pa.array([None if e else 5.0 for e in errors], pa.float32()),
    }
    return pa.table(columns, schema=ROWS_SCHEMA)


def test_account_takes_the_listing_s_record_and_adds_every_url_the_tar_lacks(tmp_path: Path) -> None:
    extras = (Extra("similarity", "sim", pa.float64()),)
    listing = read_listing(
        _listing(
            tmp_path / "l.parquet",
            key=["000", "001", "002", "003"][:3],
            similarity=[0.5, 0.6, 0.7],
        ),
        extras,
    )
    rows = account(_tar_rows(["000", "999"], [None, None]), listing, "00000.tar", extras)
    got = rows.to_pydict()
    assert got["key"] == ["000", "999", "001", "002"]
    assert got["url"] == ["https://x/0", "https://json/999", "https://x/1", "https://x/2"]
    assert got["caption"] == ["tar caption 000", "tar caption 999", "one", "two"]
    assert got["original_width"] == [640, None, None, 320] and got["sim"] == [0.5, None, 0.6, 0.7]
    assert got["error"][:2] == [None, None] and got["before_tar"] == [False, False, True, False]
    assert got["error"][2] == "not_downloaded: HTTP Error 404: File not found"
    assert got["error"][3].startswith("missing_from_tar: 00000.tar/002: img2dataset recorded it in the tar")
    assert got["hash"] == laion_hash(rows.column("url"), rows.column("caption")).tolist()
    assert account(_tar_rows(["000"], [None]), None, "t.tar", extras).column("sim").to_pylist() == [None]


def test_claims_give_each_owner_one_number_and_skip_numbers_other_writers_used(tmp_path: Path) -> None:
    root = tmp_path / "emb"
    shard_files(root, 0)[0].parent.mkdir(parents=True)
    shard_files(root, 0)[0].write_bytes(b"an older writer's shard")
    a, b = (
        {"tar": "/a/00000.tar", "model": "m", "collection": "c"},
        {"tar": "/b/00000.tar", "model": "m", "collection": "c"},
    )
    assert (claim_number(root, a), claim_number(root, b), claim_number(root, a)) == (1, 2, 1)
    assert claim_number(root, {**a, "collection": "other"}) == 3
    assert claims(root) == {1: a, 2: b, 3: {**a, "collection": "other"}}

    owners = [{"tar": f"/t/{i}.tar", "model": "m", "collection": "c"} for i in range(16)]
    numbers: list[int] = []
    threads = [threading.Thread(target=lambda o=o: numbers.append(claim_number(root, o, {}))) for o in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(4, 20)), "two writers at once never get one number"

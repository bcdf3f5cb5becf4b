"""join-tags: raw or joined LAION metadata LEFT JOIN deduplicated tag tables, into the lake's ``joined``."""

from __future__ import annotations

import math
import subprocess
import sys
import uuid
from pathlib import Path

import deltalake
import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import REPO
from lake_checks import assert_same_tables

from laion_spark.ingest import JoinInputError, job, join_tags, plan_join
from laion_spark.ingest import tags as tags_module
from laion_spark.ingest.params import JoinTags
from laion_spark.lake.collections import JOINED_SCHEMA, raw_schema
from laion_spark.lake.layout import COLLECTIONS
from laion_spark.lake.tables import write_table

CAPTIONS = ["a red car", "Crème brûlée", "日本語のキャプション", "русский текст", "party 🎉🥳", ""]


def laion(url: str | None, text: str | None) -> int:
    return mmh3.hash64(((url or "") + (text or "")).encode("utf-8"))[0]


def raw_table(collection: str, rows: int = 60) -> pa.Table:
    """Raw LAION metadata: HEIGHT holds the true width (100 + i), WIDTH the true height (50 + i).

    Planted: null URLs, null TEXTs, 3 rows with both null, and a duplicate URL+TEXT pair (rows 10 and 11).
    """
    urls = [None if i % 9 == 4 else f"https://img{i % 5}.example.com/{collection}/{i}.jpg" for i in range(rows)]
    texts = [None if i % 7 == 3 and i % 9 != 4 else f"{CAPTIONS[i % len(CAPTIONS)]} {i}" for i in range(rows)]
    for i in (0, 1, 2):
        urls[i] = texts[i] = None
    urls[11], texts[11] = urls[10], texts[10]
    columns = {
        "SAMPLE_ID": np.arange(rows, dtype=np.int64),
        "URL": urls,
        "TEXT": texts,
        "HEIGHT": np.arange(rows, dtype=np.int32) + 100,
        "WIDTH": np.arange(rows, dtype=np.int32) + 50,
        "LICENSE": ["?"] * rows,
        "LANGUAGE": [["fr", "de", "ja"][i % 3] for i in range(rows)],
        "NSFW": ["UNLIKELY"] * rows,
        "similarity": np.linspace(0.28, 0.45, rows),
    }
    schema = raw_schema(collection)
    return pa.table({name: columns[name] for name in schema.names}, schema=schema)


def write_parts(folder: Path, table: pa.Table, parts: int = 2) -> Path:
    """Write ``table`` as LAION-style part files; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    for n, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        pq.write_table(table.slice(lo, hi - lo), folder / f"part-{n:05d}-{uuid.uuid4()}-c000.snappy.parquet")
    return folder


def write_tags(path: Path, hashes: list[int | None], column: str, values: list[float | None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"hash": pa.array(hashes, pa.int64()), column: pa.array(values, pa.float32())}), path)
    return path


def row_hashes(table: pa.Table) -> list[int]:
    return [laion(u, t) for u, t in zip(table["URL"].to_pylist(), table["TEXT"].to_pylist(), strict=True)]


def joined_rows(lake_dir: Path, collection: str) -> list[dict]:
    """The collection's partition of ``joined``, read with the independent ``deltalake`` reader, sorted."""
    table = deltalake.DeltaTable(str(lake_dir / "joined")).to_pyarrow_table(filters=[("collection", "=", collection)])
    return sorted(table.to_pylist(), key=_row_key)


def _row_key(row: dict) -> tuple:
    return (row["hash"], row["URL"] or "", row["TEXT"] or "", row["WIDTH"])


def same_float(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6))


@pytest.fixture
def en(tmp_path) -> tuple[Path, pa.Table]:
    table = raw_table("laion2B-en")
    return write_parts(tmp_path / "metadata" / "laion2B-en", table), table


def test_written_counts_from_the_delta_log_are_those_of_a_read_of_the_partition(sail, tmp_path, en, monkeypatch):
    metadata, table = en
    hashes = row_hashes(table)
    tags = write_tags(tmp_path / "aesthetic.parquet", hashes[::3], "aesthetic", [5.0] * len(hashes[::3]))
    stage = JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", aesthetic_tags=tags)
    summary = join_tags(sail, stage)

    by_log = job.written_counts(sail, plan_join(stage))
    monkeypatch.setattr(job, "partition_stats", lambda *args: None)
    by_reading = job.written_counts(sail, plan_join(stage))
    assert by_log == by_reading == {name: summary.metrics[name] for name in by_log}
    assert by_log["rows_out"] == table.num_rows and by_log["rows_null_url_and_text"] == 3
    assert 0 < by_log["rows_without_aesthetic"] < table.num_rows == by_log["rows_without_pwatermark"]


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_every_metadata_row_is_kept_in_joined_per_collection(sail, tmp_path, collection):
    table = raw_table(collection)
    metadata = write_parts(tmp_path / "metadata" / collection, table, parts=3)
    hashes = row_hashes(table)
    tags = write_tags(tmp_path / "aesthetic.parquet", hashes[::2], "aesthetic", [5.0] * len(hashes[::2]))

    summary = join_tags(
        sail, JoinTags(metadata=metadata, collection=collection, lake=tmp_path / "lake", aesthetic_tags=tags)
    )

    rows = joined_rows(tmp_path / "lake", collection)
    assert len(rows) == table.num_rows == summary.metrics["rows_in"] == summary.metrics["rows_out"]
    assert summary.metrics["rows_null_url_and_text"] == 3
    assert sum(r["URL"] is None and r["TEXT"] is None for r in rows) == 3
    assert {r["collection"] for r in rows} == {collection}
    assert not (tmp_path / "lake" / "_staging").exists()  # the deduplicated tags' scratch copy is gone


def test_language_is_kept_for_multi_and_null_elsewhere(sail, tmp_path):
    for collection in ("laion2B-multi", "laion1B-nolang"):
        table = raw_table(collection)
        join_tags(
            sail,
            JoinTags(metadata=write_parts(tmp_path / collection, table), collection=collection, lake=tmp_path / "lake"),
        )
    multi = joined_rows(tmp_path / "lake", "laion2B-multi")
    assert sorted(r["LANGUAGE"] for r in multi) == sorted(raw_table("laion2B-multi")["LANGUAGE"].to_pylist())
    assert {r["LANGUAGE"] for r in joined_rows(tmp_path / "lake", "laion1B-nolang")} == {None}


def test_joined_table_has_the_joined_schema_columns_and_types(sail, tmp_path, en):
    metadata, _ = en
    join_tags(sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake"))
    schema = deltalake.DeltaTable(str(tmp_path / "lake" / "joined")).to_pyarrow_table().schema
    assert schema.names == JOINED_SCHEMA.names
    strings = (pa.string(), pa.large_string(), pa.string_view())
    for field in JOINED_SCHEMA:
        got = schema.field(field.name).type
        assert got == field.type or (field.type in strings and got in strings), (field.name, got)


def test_hash_is_laions_mmh3_of_url_and_text_for_every_row(sail, tmp_path, en):
    metadata, table = en
    join_tags(sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake"))
    rows = joined_rows(tmp_path / "lake", "laion2B-en")
    assert all(r["hash"] == laion(r["URL"], r["TEXT"]) for r in rows)
    assert sorted(r["hash"] for r in rows) == sorted(row_hashes(table))


def test_raw_width_and_height_are_swapped_back(sail, tmp_path, en):
    metadata, table = en
    join_tags(sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake"))
    true_dims = {(w, h) for w, h in zip(table["HEIGHT"].to_pylist(), table["WIDTH"].to_pylist(), strict=True)}
    rows = joined_rows(tmp_path / "lake", "laion2B-en")
    assert {(r["WIDTH"], r["HEIGHT"]) for r in rows} == true_dims
    assert all(r["WIDTH"] == r["HEIGHT"] + 50 for r in rows)


def test_swap_no_keeps_the_raw_width_and_height(sail, tmp_path, en):
    metadata, _ = en
    join_tags(
        sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", swap_width_height="no")
    )
    assert all(r["HEIGHT"] == r["WIDTH"] + 50 for r in joined_rows(tmp_path / "lake", "laion2B-en"))


def test_tags_are_left_joined_on_hash_and_prediction_becomes_punsafe(sail, tmp_path, en):
    metadata, table = en
    hashes = sorted(set(row_hashes(table)))
    aesthetic = {h: float(i % 10) + 0.5 for i, h in enumerate(hashes[: len(hashes) // 2])}
    watermark = {h: 0.25 for h in hashes[10:]}
    safety = {h: 0.75 for h in hashes[::3]}
    orphans = [123, 456]
    tags = tmp_path / "tags"
    write_tags(tags / "a.parquet", [*aesthetic, *orphans], "aesthetic", [*aesthetic.values(), 9.0, 9.0])
    write_tags(tags / "w.parquet", [*watermark, *orphans], "pwatermark", [*watermark.values(), 0.9, 0.9])
    write_tags(tags / "s.parquet", [*safety, *orphans], "prediction", [*safety.values(), 0.9, 0.9])

    summary = join_tags(
        sail,
        JoinTags(
            metadata=metadata,
            collection="laion2B-en",
            lake=tmp_path / "lake",
            aesthetic_tags=tags / "a.parquet",
            watermark_tags=tags / "w.parquet",
            safety_tags=tags / "s.parquet",
        ),
    )

    rows = joined_rows(tmp_path / "lake", "laion2B-en")
    assert len(rows) == table.num_rows
    for r in rows:
        assert same_float(r["aesthetic"], aesthetic.get(r["hash"])), r
        assert same_float(r["pwatermark"], watermark.get(r["hash"])), r
        assert same_float(r["punsafe"], safety.get(r["hash"])), r
    assert summary.metrics["rows_without_punsafe"] == sum(r["hash"] not in safety for r in rows)
    assert summary.metrics["rows_without_aesthetic"] == sum(r["hash"] not in aesthetic for r in rows)


def test_conflicting_duplicate_tags_keep_the_max_whatever_the_input_order(sail, tmp_path, en):
    metadata, table = en
    hashes = sorted(set(row_hashes(table)))
    pairs = [(h, 1.0) for h in hashes] + [(h, 7.0) for h in hashes[:5]] + [(h, 3.0) for h in hashes[:5]]
    forward = write_tags(tmp_path / "fwd" / "a.parquet", [h for h, _ in pairs], "aesthetic", [v for _, v in pairs])
    backward = tmp_path / "bwd"
    write_tags(backward / "0.parquet", [h for h, _ in pairs[::-1][:7]], "aesthetic", [v for _, v in pairs[::-1][:7]])
    write_tags(backward / "1.parquet", [h for h, _ in pairs[::-1][7:]], "aesthetic", [v for _, v in pairs[::-1][7:]])

    first = join_tags(
        sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake1", aesthetic_tags=forward)
    )
    second = join_tags(
        sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake2", aesthetic_tags=backward)
    )

    rows = joined_rows(tmp_path / "lake1", "laion2B-en")
    assert rows == joined_rows(tmp_path / "lake2", "laion2B-en")
    assert {r["hash"]: r["aesthetic"] for r in rows} == {h: 7.0 if h in hashes[:5] else 1.0 for h in hashes}
    assert first.metrics["aesthetic_duplicates_dropped"] == second.metrics["aesthetic_duplicates_dropped"] == 10


def test_tag_rows_read_equal_kept_plus_duplicates_plus_null_hash_rows(sail, tmp_path, en):
    metadata, table = en
    hashes = sorted(set(row_hashes(table)))
    rows = [*hashes, hashes[0], hashes[1], hashes[1], None, None]
    tags = write_tags(tmp_path / "w.parquet", rows, "pwatermark", [0.5] * len(rows))

    summary = join_tags(
        sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", watermark_tags=tags)
    )

    m = summary.metrics
    assert m["watermark_tag_rows"] == len(rows)
    assert (m["watermark_duplicates_dropped"], m["watermark_null_hash_dropped"]) == (3, 2)
    assert m["watermark_tag_rows"] == len(hashes) + m["watermark_duplicates_dropped"] + m["watermark_null_hash_dropped"]
    assert m["rows_without_pwatermark"] == 0


def test_a_join_failing_after_the_tags_are_staged_leaves_no_scratch_copy(sail, tmp_path, en, monkeypatch):
    metadata, table = en
    hashes = row_hashes(table)
    tags = write_tags(tmp_path / "w.parquet", hashes, "pwatermark", [0.5] * len(hashes))
    staged = []

    def fail(lake, plan, rows):
        staged.extend((tmp_path / "lake" / "_staging" / "join-tags").glob("*/*.parquet"))
        raise RuntimeError("disk full")

    monkeypatch.setattr(job, "write_joined", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        join_tags(
            sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", watermark_tags=tags)
        )

    assert staged and len({path.parent for path in staged}) == 1
    assert not (tmp_path / "lake" / "_staging").exists()


def test_rerunning_a_collection_replaces_only_its_partition(sail, tmp_path, en):
    metadata, table = en
    multi = raw_table("laion2B-multi")
    multi_dir = write_parts(tmp_path / "metadata" / "laion2B-multi", multi)
    lake = tmp_path / "lake"
    join_tags(sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=lake))
    first = joined_rows(lake, "laion2B-en")
    join_tags(sail, JoinTags(metadata=multi_dir, collection="laion2B-multi", lake=lake))
    join_tags(sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=lake))

    assert joined_rows(lake, "laion2B-en") == first
    assert len(first) == table.num_rows
    assert len(joined_rows(lake, "laion2B-multi")) == multi.num_rows


def joined_variant(tmp_path: Path) -> tuple[Path, pa.Table]:
    """A laion2B-en-joined style file: correct WIDTH/HEIGHT, hash, pwatermark, punsafe; row 5's hash is wrong."""
    raw = raw_table("laion2B-en", rows=20)
    hashes = row_hashes(raw)
    hashes[5] += 1
    table = pa.table(
        {
            "URL": raw["URL"],
            "TEXT": raw["TEXT"],
            "WIDTH": raw["HEIGHT"],
            "HEIGHT": raw["WIDTH"],
            "similarity": raw["similarity"],
            "hash": pa.array(hashes, pa.int64()),
            "pwatermark": pa.array([0.1 * (i % 10) for i in range(20)], pa.float32()),
            "punsafe": pa.array([None if i % 4 == 0 else 0.3 for i in range(20)], pa.float32()),
        }
    )
    return write_parts(tmp_path / "laion2B-en-joined", table), table


def test_joined_input_keeps_its_hash_dimensions_and_tags(sail, tmp_path):
    metadata, table = joined_variant(tmp_path)
    join_tags(sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake"))
    rows = joined_rows(tmp_path / "lake", "laion2B-en")
    expected = sorted(
        ({**r, "LANGUAGE": None, "aesthetic": None, "collection": "laion2B-en"} for r in table.to_pylist()),
        key=_row_key,
    )
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert {k: got[k] for k in ("URL", "TEXT", "WIDTH", "HEIGHT", "hash", "LANGUAGE", "aesthetic")} == {
            k: want[k] for k in ("URL", "TEXT", "WIDTH", "HEIGHT", "hash", "LANGUAGE", "aesthetic")
        }
        assert same_float(got["pwatermark"], want["pwatermark"]) and same_float(got["punsafe"], want["punsafe"])


def test_verify_hash_counts_rows_whose_stored_hash_is_wrong(sail, tmp_path):
    metadata, _ = joined_variant(tmp_path)
    summary = join_tags(
        sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", verify_hash=True)
    )
    assert summary.metrics["hash_mismatches"] == 1
    assert summary.metrics["rows_out"] == 20


def test_a_tag_table_replaces_the_joined_inputs_own_tag_column(sail, tmp_path):
    metadata, table = joined_variant(tmp_path)
    safety = write_tags(tmp_path / "s.parquet", table["hash"].to_pylist()[:3], "prediction", [0.9] * 3)
    join_tags(sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", safety_tags=safety))
    rows = joined_rows(tmp_path / "lake", "laion2B-en")
    by_hash = {r["hash"]: r for r in rows}
    assert sum(r["punsafe"] is not None for r in rows) == 3
    assert all(same_float(by_hash[h]["punsafe"], 0.9) for h in table["hash"].to_pylist()[:3])
    assert sum(r["pwatermark"] is not None for r in rows) == 20


def test_missing_columns_are_one_error_naming_each_file_and_column_before_spark_work(sail, tmp_path):
    folder = tmp_path / "metadata"
    write_parts(folder, raw_table("laion2B-en").drop_columns(["similarity"]), parts=2)
    pq.write_table(raw_table("laion2B-en").drop_columns(["TEXT", "WIDTH"]), folder / "part-00009-x-c000.snappy.parquet")

    with pytest.raises(JoinInputError) as err:
        join_tags(sail, JoinTags(metadata=folder, collection="laion2B-en", lake=tmp_path / "lake"))

    message = str(err.value)
    for file in folder.iterdir():
        assert file.name in message
    assert "similarity" in message and "TEXT, WIDTH" in message
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize("bad", ["notes.txt", "truncated.parquet"])
def test_unreadable_or_non_parquet_metadata_file_is_named(tmp_path, en, bad):
    metadata, _ = en
    good = next(metadata.iterdir()).read_bytes()
    (metadata / bad).write_bytes(b"not parquet" if bad.endswith(".txt") else good[: len(good) // 2])
    with pytest.raises(JoinInputError, match=rf"not readable as parquet:\n.*{bad}"):
        plan_join(JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake"))


def test_wrong_and_inconsistent_column_types_are_reported_with_their_files(tmp_path, en):
    metadata, table = en
    wide = table.set_column(table.schema.get_field_index("WIDTH"), "WIDTH", pc.cast(table["WIDTH"], pa.int64()))
    pq.write_table(wide, metadata / "part-00008-x.parquet")
    pq.write_table(table.set_column(1, "URL", pa.array(range(table.num_rows))), metadata / "part-00009-x.parquet")
    with pytest.raises(JoinInputError) as err:
        plan_join(JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake"))
    assert "column URL is bigint, expected string, in " + str(metadata / "part-00009-x.parquet") in str(err.value)
    assert "column WIDTH has different types across files: bigint in " + str(metadata / "part-00008-x.parquet") in str(
        err.value
    )


def test_tag_table_without_hash_is_refused(tmp_path, en):
    metadata, _ = en
    pq.write_table(pa.table({"key": [1], "aesthetic": [5.0]}), tmp_path / "a.parquet")
    with pytest.raises(JoinInputError, match=r"aesthetic tags .*a\.parquet.*\n.*missing column\(s\) hash"):
        plan_join(
            JoinTags(
                metadata=metadata,
                collection="laion2B-en",
                lake=tmp_path / "lake",
                aesthetic_tags=tmp_path / "a.parquet",
            )
        )


def test_metadata_files_disagreeing_on_the_hash_column_are_refused(tmp_path, en):
    metadata, table = en
    pq.write_table(table.append_column("hash", pa.array(row_hashes(table))), metadata / "part-00007-x.parquet")
    with pytest.raises(JoinInputError, match="some files carry a hash column and some do not"):
        plan_join(JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake"))


def scored_tags(sail, lake: Path, hashes: list[int]) -> Path:
    """An ``aesthetic_tags`` Delta table as the scoring job writes it: two heads, two collections."""
    rows = [
        (h, float(score), collection, 0, head)
        for collection in ("laion2B-en", "laion2B-multi")
        for head, score in (("laion-v1-l14", 4.0), ("laion-v2-l14", 6.0))
        for h in hashes
    ]
    df = sail.spark.createDataFrame(rows, "hash long, aesthetic float, collection string, shard int, head string")
    write_table(sail, df, lake / "aesthetic_tags", partition_by=["collection"], mode="overwrite")
    return lake / "aesthetic_tags"


def test_delta_aesthetic_tags_with_several_heads_need_a_chosen_head(sail, tmp_path, en):
    metadata, table = en
    tags = scored_tags(sail, tmp_path / "lake", row_hashes(table))
    with pytest.raises(JoinInputError, match="several heads for laion2B-en: laion-v1-l14, laion-v2-l14"):
        join_tags(
            sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", aesthetic_tags=tags)
        )


def test_delta_aesthetic_tags_give_the_chosen_heads_scores_for_the_collection(sail, tmp_path, en):
    metadata, table = en
    tags = scored_tags(sail, tmp_path / "lake", row_hashes(table))
    summary = join_tags(
        sail,
        JoinTags(
            metadata=metadata,
            collection="laion2B-en",
            lake=tmp_path / "lake",
            aesthetic_tags=tags,
            aesthetic_head="laion-v2-l14",
        ),
    )
    assert {r["aesthetic"] for r in joined_rows(tmp_path / "lake", "laion2B-en")} == {6.0}
    assert summary.metrics["aesthetic_tag_rows"] == table.num_rows


def test_a_delta_tag_table_whose_log_cannot_be_listed_is_one_error_naming_it(sail, tmp_path, en, monkeypatch):
    metadata, table = en
    tags = scored_tags(sail, tmp_path / "lake", row_hashes(table))

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tags_module, "delta_version", unreadable)
    with pytest.raises(JoinInputError, match=r"aesthetic tags .*aesthetic_tags: cannot read it as a delta table"):
        join_tags(
            sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", aesthetic_tags=tags)
        )


def test_a_delta_tag_table_is_read_at_one_version_while_another_writer_commits(sail, tmp_path, en, monkeypatch):
    metadata, table = en
    hashes = row_hashes(table)
    tags = scored_tags(sail, tmp_path / "lake", hashes)
    write = job.write_joined

    def commit_meanwhile(lake, plan, rows):  # after the tags are copied, before the join and the counts read them
        more = sail.spark.createDataFrame(
            [(hashes[0], 9.0, "laion2B-en", 1, "laion-v2-l14")] * 5,
            "hash long, aesthetic float, collection string, shard int, head string",
        )
        write_table(sail, more, tags, partition_by=["collection"], mode="append")
        write(lake, plan, rows)

    monkeypatch.setattr(job, "write_joined", commit_meanwhile)
    stage = JoinTags(
        metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", aesthetic_tags=tags,
        aesthetic_head="laion-v2-l14",
    )  # fmt: skip
    m = join_tags(sail, stage).metrics

    assert m["aesthetic_tag_rows"] == len(hashes)
    assert m["aesthetic_duplicates_dropped"] == len(hashes) - len(set(hashes))
    assert {r["aesthetic"] for r in joined_rows(tmp_path / "lake", "laion2B-en")} == {6.0}


def test_delta_aesthetic_tags_without_the_collection_are_refused(sail, tmp_path):
    table = raw_table("laion1B-nolang")
    metadata = write_parts(tmp_path / "nolang", table)
    tags = scored_tags(sail, tmp_path / "lake", row_hashes(table))
    with pytest.raises(JoinInputError, match="no rows for collection 'laion1B-nolang' .*laion2B-en, laion2B-multi"):
        join_tags(
            sail,
            JoinTags(
                metadata=metadata,
                collection="laion1B-nolang",
                lake=tmp_path / "lake",
                aesthetic_tags=tags,
                aesthetic_head="x",
            ),
        )


def test_run_summary_is_appended_to_the_runs_table(sail, tmp_path, en):
    metadata, table = en
    summary = join_tags(sail, JoinTags(metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake"))
    runs = deltalake.DeltaTable(str(tmp_path / "lake" / "runs")).to_pyarrow_table().to_pylist()
    recorded = {r["metric"]: r["value"] for r in runs if r["run_id"] == summary.run_id}
    assert recorded == summary.metrics
    assert recorded["rows_in"] == recorded["rows_out"] == table.num_rows
    assert {r["job"] for r in runs} == {"join-tags"}


def test_jobs_entry_point_runs_the_command_and_refuses_bad_metadata_with_exit_code_2(tmp_path):
    bad = tmp_path / "meta.parquet"
    pq.write_table(pa.table({"URL": ["u"]}), bad)
    proc = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "join_tags.py"), "--engine", "sail", "--metadata", str(bad),
         "--collection", "laion2B-en", "--lake", str(tmp_path / "lake")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"missing column(s) TEXT, WIDTH, HEIGHT, similarity in {bad}" in proc.stderr
    assert not (tmp_path / "lake").exists()


@pytest.mark.classic
def test_classic_spark_delta_joined_equals_sail_delta(classic_run, reference_run):
    """join-tags of every collection on classic Spark (delta-spark, ``local[2]``): the same rows as on Sail,
    in the same columns, read back by delta-rs."""
    assert_same_tables(classic_run, reference_run, ["joined"])
    ours = deltalake.DeltaTable(str(classic_run / "lake" / "joined"))
    assert ours.schema().to_arrow().names == JOINED_SCHEMA.names
    assert ours.metadata().partition_columns == ["collection"]


@pytest.mark.classic
def test_classic_spark_run_summaries_count_as_sail_does(classic_run, reference_run):
    """Every join-tags count of the run summaries (written counts from delta-spark's file statistics, tag counts)
    is the same on both engines."""

    def counts(root: Path) -> dict[tuple[str, str], int]:
        runs = deltalake.DeltaTable(str(root / "lake" / "runs")).to_pyarrow_table()
        rows = runs.filter(pc.equal(runs["job"], "join-tags")).to_pylist()
        return {(r["collection"], r["metric"]): r["value"] for r in rows}

    classic, sail = counts(classic_run), counts(reference_run)
    assert classic == sail and any(metric == "rows_without_aesthetic" for _, metric in sail)

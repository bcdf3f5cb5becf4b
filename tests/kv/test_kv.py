"""The on-disk hash -> values KV: built with Spark, read by us and by static_ondisk_kv."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from static_ondisk_kv import OnDiskKV, parquet_to_file
from typer.testing import CliRunner

from laion_spark.cli.app import app
from laion_spark.engine.session import LakeSession
from laion_spark.kv import build as kv_build
from laion_spark.kv.build import KVBuildError, _range_bounds, _range_writer, _spread_keys, build_kv
from laion_spark.kv.params import BuildKV
from laion_spark.kv.reader import KV, OPEN_CHECK_RECORDS, KVFormatError, laion_key, record_dtype
from laion_spark.lake.tables import WriteConflictError, read_table, write_table
from laion_spark.stage import ParamError

# LAION's usage-guide example (DESIGN.md section 2).
EXAMPLE_URL = (
    "http://1.bp.blogspot.com/-4nSga1sbduI/UDT3Q1H9dzI/AAAAAAAABWE/O7_lyFGjmU0/s1600/"
    "Vintage+Wedding+Table+Decorations+Pictures.jpg"
)
EXAMPLE_TEXT = "Cake Table Decoration Ideas"
EXAMPLE_HASH = 4623837408423549118


def _scores(n: int, seed: int) -> pa.Table:
    """``hash``/``aesthetic`` rows in random order: some duplicate keys, null keys, null and NaN scores,
    and float16 rounding ties (round half to even, as struct does)."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    keys[n // 2 : n // 2 + n // 20] = keys[: n // 20]
    scores = (rng.random(n) * 10).astype(np.float32)
    scores[:4] = [1.00048828125, 1.00146484375, 9.99, 0.0]
    scores[7::101] = np.nan
    key_mask = np.zeros(n, dtype=bool)
    key_mask[11::211] = True
    return pa.table(
        {
            "hash": pa.array(keys, mask=key_mask),
            "aesthetic": pa.array(scores, mask=np.arange(n) % 97 == 5),
        }
    )


def _delta(lake: LakeSession, table: pa.Table, path: Path) -> Path:
    frame = lake.spark.createDataFrame(table, schema=from_arrow_schema(table.schema))
    write_table(lake, frame, path, mode="overwrite")
    return path


def _peer_file(table: pa.Table, value_columns: list[str], value_format: str, tmp_path: Path) -> bytes:
    """What static_ondisk_kv.parquet_to_file writes from the same rows, sorted and deduplicated
    the way ``--on-duplicate first`` documents (smallest values first, NaN and null last)."""
    df = table.filter(pc.is_valid(table["hash"])).to_pandas()
    df = df.sort_values(["hash", *value_columns], na_position="last", kind="stable").drop_duplicates("hash")
    source = tmp_path / "peer_input.parquet"
    pq.write_table(pa.Table.from_pandas(df[["hash", *value_columns]], preserve_index=False), source)
    out = tmp_path / "peer.kv"
    parquet_to_file(str(source), str(out), value_columns=value_columns, value_format=value_format)
    return out.read_bytes()


@pytest.fixture(scope="module")
def scores_kv(sail: LakeSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, Path]:
    """An aesthetic KV built on Sail from a Delta table of 3,000 scored rows."""
    tmp = tmp_path_factory.mktemp("scores")
    rows = _scores(3000, seed=1)
    build_kv(
        sail,
        BuildKV(
            table=_delta(sail, rows, tmp / "aesthetic_tags"),
            out=tmp / "aesthetic.kv",
            value_columns=["aesthetic"],
            on_duplicate="first",
        ),
    )
    return rows, tmp / "aesthetic.kv"


def test_static_ondisk_kv_reads_our_file_and_returns_our_values(scores_kv: tuple[pa.Table, Path]) -> None:
    rows, path = scores_kv
    peer = OnDiskKV(file=str(path), key_format="q", value_format="e")
    df = rows.filter(pc.is_valid(rows["hash"])).to_pandas().dropna().drop_duplicates("hash", keep=False).head(200)
    for key, score in zip(df["hash"], df["aesthetic"], strict=True):
        assert peer[int(key)] == (float(np.float16(score)),)


def test_file_is_byte_identical_to_parquet_to_file_on_sorted_deduplicated_rows(
    scores_kv: tuple[pa.Table, Path], tmp_path: Path
) -> None:
    rows, path = scores_kv
    assert path.read_bytes() == _peer_file(rows, ["aesthetic"], "e", tmp_path)


def test_watermark_safety_kv_from_joined_is_byte_identical_with_nulls_as_nan(sail: LakeSession, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 1500
    joined = pa.table(
        {
            "URL": pa.array([f"http://x/{i}.jpg" for i in range(n)]),
            "hash": pa.array(rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)),
            "pwatermark": pa.array(rng.random(n).astype(np.float32), mask=np.arange(n) % 7 == 0),
            "punsafe": pa.array(rng.random(n).astype(np.float32), mask=np.arange(n) % 5 == 0),
            "collection": pa.array(["laion2B-en", "laion2B-multi"] * (n // 2)),
        }
    )
    out = tmp_path / "watermark_safety.kv"
    result = build_kv(
        sail,
        BuildKV(
            table=_delta(sail, joined, tmp_path / "joined"),
            out=out,
            value_columns=["pwatermark", "punsafe"],
            value_format="ee",
        ),
    )
    assert result.record_size == 12
    assert out.read_bytes() == _peer_file(joined, ["pwatermark", "punsafe"], "ee", tmp_path)
    values = KV(out, "ee")[int(joined["hash"][0].as_py())]
    assert np.isnan(values).all()


def test_multi_range_build_gives_the_same_bytes_as_one_range_sorting_one_range_per_cpu_at_a_time(
    sail: LakeSession, scores_kv: tuple[pa.Table, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sail runs every range's task at once, as threads of this process: each holds a CPU slot to sort."""
    running, most = [0], [0]
    lock = threading.Lock()
    row_order = kv_build._row_order

    def slow_row_order(*args: object) -> object:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)  # long enough for every task's thread to have its rows by now
        try:
            return row_order(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(kv_build, "_row_order", slow_row_order)
    rows, single = scores_kv
    out = tmp_path / "ranges.kv"
    stage = BuildKV(
        table=_delta(sail, rows, tmp_path / "t"),
        out=out,
        value_columns=["aesthetic"],
        max_rows_per_range=400,
        on_duplicate="first",
    )
    result = build_kv(sail, stage)
    assert result.ranges > len(os.sched_getaffinity(0))
    assert 1 <= most[0] <= len(os.sched_getaffinity(0))
    assert out.read_bytes() == single.read_bytes()
    assert not (tmp_path / "ranges.kv.staging").exists()
    assert not (tmp_path / "ranges.kv.partial").exists()


def test_a_task_given_several_key_ranges_writes_one_sorted_fragment_per_range(tmp_path: Path) -> None:
    write = _range_writer(str(tmp_path), "e", ["aesthetic"], "hash", "first", limit=None, ranges=3)
    rows = pa.record_batch(
        {
            "key": pa.array([30, 10, 31, 10, 12], pa.int64()),
            "v0": pa.array([1.0, 3.0, 2.0, 1.0, None], pa.float32()),
            "kv_range": pa.array([5, 0, 5, 3, 0], pa.int32()),  # partition keys: the range is the key modulo 3
        }
    )
    summaries = [row for out in write(iter([rows.slice(0, 2), rows.slice(2)])) for row in out.to_pylist()]
    got = [(s["range"], s["rows"], s["written"], s["dropped"], s["first_key"], s["last_key"]) for s in summaries]
    assert got == [(0, 3, 2, 1, 10, 12), (2, 2, 2, 0, 30, 31)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["range-000000.kv", "range-000002.kv"]
    first = KV(tmp_path / "range-000000.kv")
    assert first[10] == (1.0,) and np.isnan(first[12][0])
    assert KV(tmp_path / "range-000002.kv").keys.tolist() == [30, 31]


@pytest.mark.parametrize("ranges", [2, 10, 37])
def test_each_key_range_gets_a_task_of_its_own(sail: LakeSession, ranges: int) -> None:
    keys = _spread_keys(sail.spark, ranges)
    assert [key % ranges for key in keys] == list(range(ranges))
    rows = sail.spark.createDataFrame([(k,) for k in keys], "kv_range int").repartition(ranges, "kv_range")
    tasks = rows.select(F.spark_partition_id().alias("task")).toArrow().column("task").to_pylist()
    assert sorted(tasks) == list(range(ranges))


def test_range_bounds_of_a_large_table_sit_near_its_quantiles_and_repeat(sail: LakeSession, tmp_path: Path) -> None:
    # 12M keys in ranges of at most 5M: ~768 keys sampled, a fraction of 6.4e-5, for which Sail's
    # DataFrame.sample returns no row.
    write_table(sail, sail.spark.range(12_000_000).select(F.col("id").alias("key")), tmp_path / "t", mode="overwrite")
    keys = read_table(sail, tmp_path / "t")
    bounds = _range_bounds(keys, 12_000_000, 5_000_000)
    assert np.allclose(bounds, [4_000_000, 8_000_000], rtol=0.1), bounds
    assert np.array_equal(bounds, _range_bounds(keys, 12_000_000, 5_000_000))


def test_a_task_over_the_range_limit_stops_reading_and_writes_nothing(tmp_path: Path) -> None:
    write = _range_writer(str(tmp_path), "e", ["aesthetic"], "hash", "first", limit=3, ranges=1)
    batch = pa.record_batch({"key": pa.array([3, None, 1], pa.int64()), "v0": pa.array([1.0, 2.0, 3.0], pa.float32())})

    def batches():
        yield batch
        yield batch  # the 4th row with a key: over the limit
        raise AssertionError("read past the limit")

    summaries = [row for out in write(batches()) for row in out.to_pylist()]
    assert [(s["too_large"], s["rows"], s["written"]) for s in summaries] == [(True, 6, 0)]
    assert list(tmp_path.iterdir()) == []


def test_staging_given_as_a_uri_is_refused(sail: LakeSession, tmp_path: Path) -> None:
    table = _delta(sail, _scores(10, seed=2), tmp_path / "t")
    with pytest.raises(KVBuildError, match=r"staging s3://bucket/kv is a URI: .* give a \(shared\) filesystem path"):
        build_kv(
            sail, BuildKV(table=table, out=tmp_path / "x.kv", value_columns=["aesthetic"], staging="s3://bucket/kv")
        )


@pytest.mark.parametrize("max_rows_per_range", [5_000_000, 300], ids=["one-range", "several-ranges"])
def test_rows_in_equal_rows_written_plus_duplicates_dropped_plus_null_keys(
    sail: LakeSession, tmp_path: Path, max_rows_per_range: int
) -> None:
    rows = _scores(2000, seed=3)
    table = _delta(sail, rows, tmp_path / "t")
    result = build_kv(
        sail,
        BuildKV(table=table, out=tmp_path / "a.kv", value_columns=["aesthetic"], max_rows_per_range=max_rows_per_range),
    )
    assert (result.ranges > 1) == (max_rows_per_range == 300)
    keys = rows.column("hash").to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    assert result.rows_in == 2000
    assert result.null_keys_rejected == int(keys.isna().sum())
    assert result.rows_written == keys.dropna().nunique()
    assert result.duplicates_dropped == keys.notna().sum() - keys.dropna().nunique() > 0
    assert result.rows_in == result.rows_written + result.duplicates_dropped + result.null_keys_rejected
    assert len(KV(tmp_path / "a.kv")) == result.rows_written


@pytest.mark.parametrize(("policy", "expected"), [("first", 1.0), ("max", 3.0)])
def test_on_duplicate_keeps_the_smallest_or_largest_value_nan_and_null_last(
    sail: LakeSession, tmp_path: Path, policy: str, expected: float
) -> None:
    rows = pa.table(
        {
            "hash": pa.array([7, 7, 7, 7, 8], pa.int64()),
            "aesthetic": pa.array([np.nan, 3.0, None, 1.0, 5.0], pa.float32()),
        }
    )
    out = tmp_path / "dup.kv"
    result = build_kv(
        sail,
        BuildKV(table=_delta(sail, rows, tmp_path / "t"), out=out, value_columns=["aesthetic"], on_duplicate=policy),
    )
    assert (result.rows_written, result.duplicates_dropped) == (2, 3)
    assert KV(out)[7] == (expected,)


@pytest.mark.parametrize("max_rows_per_range", [5_000_000, 2], ids=["one-range", "several-ranges"])
def test_on_duplicate_error_names_a_duplicated_hash_and_the_counts(
    sail: LakeSession, tmp_path: Path, max_rows_per_range: int
) -> None:
    rows = pa.table({"hash": pa.array([5, 3, 5, 9, 3, 5], pa.int64()), "aesthetic": pa.array([1.0] * 6, pa.float32())})
    table = _delta(sail, rows, tmp_path / "t")
    with pytest.raises(KVBuildError, match=r"2 hash values appear more than once \(5 rows\), e\.g\. hash 3"):
        build_kv(
            sail,
            BuildKV(
                table=table,
                out=tmp_path / "e.kv",
                value_columns=["aesthetic"],
                on_duplicate="error",
                max_rows_per_range=max_rows_per_range,
            ),
        )
    assert not (tmp_path / "e.kv").exists()


def test_value_too_large_for_float16_is_refused_naming_column_and_hash(sail: LakeSession, tmp_path: Path) -> None:
    rows = pa.table({"hash": pa.array([1, 2], pa.int64()), "score": pa.array([1.0, 70000.0], pa.float64())})
    with pytest.raises(KVBuildError, match=r"column 'score': value 70000.0 at hash 2 does not fit the 16-bit float"):
        build_kv(
            sail, BuildKV(table=_delta(sail, rows, tmp_path / "t"), out=tmp_path / "big.kv", value_columns=["score"])
        )
    assert not (tmp_path / "big.kv").exists()
    assert not (tmp_path / "big.kv.partial").exists()


def test_value_format_must_have_one_code_per_value_column(sail: LakeSession, tmp_path: Path) -> None:
    with pytest.raises(ParamError, match=r"value_format: value format 'e' has 1 code\(s\) for 2 value column\(s\)"):
        build_kv(
            sail,
            BuildKV(
                table=tmp_path / "unused",
                out=tmp_path / "x.kv",
                value_columns=["pwatermark", "punsafe"],
                value_format="e",
            ),
        )


def test_missing_value_column_is_named_with_the_columns_there_are(sail: LakeSession, tmp_path: Path) -> None:
    rows = pa.table({"hash": pa.array([1], pa.int64()), "aesthetic": pa.array([1.0], pa.float32())})
    with pytest.raises(KVBuildError, match=r"no column 'punsafe'; columns are hash, aesthetic"):
        build_kv(
            sail, BuildKV(table=_delta(sail, rows, tmp_path / "t"), out=tmp_path / "x.kv", value_columns=["punsafe"])
        )


def test_batch_and_single_lookups_agree_and_absent_keys_give_nan(scores_kv: tuple[pa.Table, Path]) -> None:
    _, path = scores_kv
    kv = KV(path)
    present = np.asarray(kv.keys[::37])
    absent = present[:-1] + 1  # keys are random int64s: their neighbours are not in the file
    query = np.concatenate([absent, present])[::-1]
    values, found = kv.get_batch(query)
    assert found.tolist() == [key in kv for key in query.tolist()]
    assert found.sum() == present.shape[0]
    for key, row, hit in zip(query.tolist(), values, found, strict=True):
        if hit:
            np.testing.assert_array_equal(row, np.array(kv[key], dtype=np.float32))
        else:
            assert np.isnan(row).all()
            with pytest.raises(KeyError):
                kv[key]


def test_lookup_by_url_and_text_uses_the_laion_hash(sail: LakeSession, tmp_path: Path) -> None:
    assert laion_key(EXAMPLE_URL, EXAMPLE_TEXT) == EXAMPLE_HASH
    rows = pa.table({"hash": pa.array([EXAMPLE_HASH, 1], pa.int64()), "aesthetic": pa.array([6.5, 2.0], pa.float32())})
    out = tmp_path / "example.kv"
    build_kv(sail, BuildKV(table=_delta(sail, rows, tmp_path / "t"), out=out, value_columns=["aesthetic"]))
    assert KV(out).get_text(EXAMPLE_URL, EXAMPLE_TEXT) == (6.5,)
    values, found = KV(out).get_batch_text([EXAMPLE_URL, "http://absent.example", None], [EXAMPLE_TEXT, "x", None])
    assert found.tolist() == [True, False, False]
    assert values[0, 0] == 6.5 and np.isnan(values[1:]).all()
    got = CliRunner().invoke(app, ["kv-get", str(out), "--url", EXAMPLE_URL, "--text", EXAMPLE_TEXT])
    assert got.exit_code == 0, got.output
    assert got.output.split() == [str(EXAMPLE_HASH), "6.5"]


def test_kv_get_exits_1_with_a_message_when_the_hash_is_absent(scores_kv: tuple[pa.Table, Path]) -> None:
    _, path = scores_kv
    missing = int(KV(path).keys[0]) - 1
    got = CliRunner().invoke(app, ["kv-get", str(path), "--hash", str(missing)])
    assert got.exit_code == 1
    assert f"hash {missing} not found in {path}" in got.output


def _write_records(path: Path, keys: list[int], value_format: str = "e") -> Path:
    records = np.zeros(len(keys), dtype=record_dtype(value_format))
    records["key"] = keys
    path.write_bytes(records.tobytes())
    return path


@pytest.mark.parametrize(
    ("keys", "cut", "message"),
    [
        ([1, 2, 3], 3, r"size 27 bytes is not a multiple of the 10-byte record"),
        ([1, 5, 3], 0, r"keys not sorted: record 1 has key 5 and record 2 has key 3"),
        ([1, 4, 4], 0, r"duplicate key: record 1 has key 4 and record 2 has key 4"),
    ],
    ids=["truncated", "unsorted", "duplicate"],
)
def test_bad_files_are_refused_by_the_reader_and_by_kv_verify(
    tmp_path: Path, keys: list[int], cut: int, message: str
) -> None:
    path = _write_records(tmp_path / "bad.kv", keys)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) - cut])
    with pytest.raises(KVFormatError, match=message):
        KV(path)
    got = CliRunner().invoke(app, ["kv-verify", str(path)])
    assert got.exit_code == 2
    assert (
        got.stderr.startswith("error:")
        and got.stderr.count("\n") == 1
        and message.replace("\\", "").split(":")[0] in got.output
    )


def test_open_checks_a_sample_of_large_files_and_verify_checks_every_record(tmp_path: Path) -> None:
    n = OPEN_CHECK_RECORDS * 4
    keys = np.arange(n, dtype=np.int64) * 2
    keys[n // 2 : n // 2 + 64] = -1  # a disordered run longer than the sampling step
    with pytest.raises(KVFormatError, match="keys not sorted"):
        KV(_write_records(tmp_path / "disordered.kv", keys.tolist()))
    keys = np.arange(n, dtype=np.int64) * 2
    keys[n // 2 + 1] = keys[n // 2]  # one duplicate between two sampled records
    kv = KV(_write_records(tmp_path / "duplicate.kv", keys.tolist()))
    with pytest.raises(KVFormatError, match=f"duplicate key: record {n // 2:,} has key {keys[n // 2]}"):
        kv.verify()


def test_kv_verify_accepts_a_good_file_and_refuses_the_wrong_value_format(tmp_path: Path) -> None:
    path = _write_records(tmp_path / "five.kv", [1, 2, 3, 4, 5])  # 50 bytes: 5 records of q + e
    ok = CliRunner().invoke(app, ["kv-verify", str(path)])
    assert ok.exit_code == 0 and "OK, 5 records of 10 bytes" in ok.output
    wrong_format = CliRunner().invoke(app, ["kv-verify", str(path), "--value-format", "ee"])
    assert wrong_format.exit_code == 2
    assert "size 50 bytes is not a multiple of the 12-byte record" in wrong_format.output


def test_record_layout_matches_struct_packing_with_alignment() -> None:
    assert [record_dtype(f).itemsize for f in ("e", "ee", "f", "ef")] == [10, 12, 12, 16]
    assert record_dtype("ef").fields["v1"][1] == 12  # struct.pack("ef") pads the float32 to 4-byte alignment


def test_cli_build_prints_the_row_accounting_and_records_the_run(sail: LakeSession, tmp_path: Path) -> None:
    rows = _scores(500, seed=4)
    table = _delta(sail, rows, tmp_path / "t")
    out = tmp_path / "cli.kv"
    proc = run_cli(
        "build-kv",
        "--table",
        str(table),
        "--value-columns",
        "aesthetic",
        "--out",
        str(out),
        "--lake",
        str(tmp_path / "lake"),
    )
    result = build_kv(sail, BuildKV(table=table, out=tmp_path / "lib.kv", value_columns=["aesthetic"]))
    assert out.read_bytes() == (tmp_path / "lib.kv").read_bytes()
    assert (
        f"rows in 500 = written {result.rows_written:,} + duplicates dropped {result.duplicates_dropped:,} "
        f"+ null keys rejected {result.null_keys_rejected:,}" in proc.stdout
    )
    runs = DeltaTable(str(tmp_path / "lake" / "runs")).to_pandas()
    assert dict(zip(runs["metric"], runs["value"], strict=True))["rows_written"] == result.rows_written


@pytest.mark.classic
def test_classic_spark_builds_the_same_bytes_as_sail(classic_run: Path, reference_run: Path) -> None:
    """Both KV files of the pipeline, built on classic Spark in several key ranges, byte for byte Sail's."""
    for name in ("aesthetic.kv", "watermark_safety.kv"):
        ours = (classic_run / "kv" / name).read_bytes()
        assert ours and ours == (reference_run / "kv" / name).read_bytes(), name
    runs = DeltaTable(str(classic_run / "lake" / "runs")).to_pandas()
    ranges = runs[(runs["job"] == "build-kv") & (runs["metric"] == "key_ranges")]["value"]
    assert len(ranges) == 2 and (ranges > 1).all()


def test_empty_table_gives_an_empty_kv_that_reads_back(sail: LakeSession, tmp_path: Path) -> None:
    out = tmp_path / "empty.kv"
    result = build_kv(
        sail,
        BuildKV(
            table=_delta(sail, _scores(10, seed=3).slice(0, 0), tmp_path / "t"), out=out, value_columns=["aesthetic"]
        ),
    )
    assert (result.rows_in, out.stat().st_size) == (0, 0)
    values, found = KV(out).get_batch(np.array([1, 2]))
    assert values.shape == (2, 1) and not found.any()


def test_a_staging_folder_left_by_a_killed_build_is_removed_and_the_build_completes(
    sail: LakeSession, tmp_path: Path
) -> None:
    """Pins the staging folder's OWNER check: without it the orphaned folder refuses every later build."""
    rows = _scores(300, seed=9)
    table = _delta(sail, rows, tmp_path / "t")
    staging = tmp_path / "out.kv.staging"
    staging.mkdir()
    (staging / "range-000000.kv").write_bytes(b"half a fragment")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (staging / "OWNER").write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    result = build_kv(sail, BuildKV(table=table, out=tmp_path / "out.kv", value_columns=["aesthetic"]))
    assert result.rows_written > 0 and not staging.exists()
    KV(tmp_path / "out.kv").verify()


def test_a_staging_folder_of_a_running_build_is_refused_as_a_conflict(sail: LakeSession, tmp_path: Path) -> None:
    table = _delta(sail, _scores(50, seed=9), tmp_path / "t")
    staging = tmp_path / "out.kv.staging"
    staging.mkdir()
    (staging / "OWNER").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    with pytest.raises(WriteConflictError, match="another build of this file is writing now"):
        build_kv(sail, BuildKV(table=table, out=tmp_path / "out.kv", value_columns=["aesthetic"]))
    assert staging.exists() and not (tmp_path / "out.kv").exists()

"""build-kv under the non-finite rule (laion_spark.lake.finite): among rows sharing a key a real number is always
kept before NaN or an infinity, whichever duplicate rule; such values are written as the table holds them (LAION's
format) and counted in the run summary."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laion_spark.kv import build_kv
from laion_spark.kv.params import BuildKV
from laion_spark.kv.reader import KV

NAN, INF = float("nan"), float("inf")
#: key -> the values of its rows
ROWS = {
    1: [9.0, INF],  # +inf is not "the largest"
    2: [NAN, 2.0],
    3: [-INF, 1.0],  # -inf is not "the first"
    4: [INF],  # alone: written as it is
    5: [NAN],
    6: [5.0],
}


@pytest.mark.parametrize(("rule", "expected"), [("max", {1: 9.0, 2: 2.0, 3: 1.0}), ("first", {1: 9.0, 2: 2.0, 3: 1.0})])
def test_a_real_value_is_kept_before_a_non_finite_one_and_they_are_counted(sail, tmp_path, rule, expected) -> None:
    keys = [k for k, values in ROWS.items() for _ in values]
    values = [v for vs in ROWS.values() for v in vs]
    pq.write_table(pa.table({"hash": pa.array(keys, pa.int64()), "aesthetic": pa.array(values, pa.float32())}),
                   tmp_path / "tags.parquet")  # fmt: skip
    result = build_kv(
        sail,
        BuildKV(table=tmp_path / "tags.parquet", out=tmp_path / "a.kv", value_columns=["aesthetic"], on_duplicate=rule),
    )
    with KV(tmp_path / "a.kv") as kv:
        for key, value in expected.items():
            assert kv[key] == (value,), key
        assert kv[4] == (INF,) and math.isnan(kv[5][0]) and kv[6] == (5.0,)
    assert result.non_finite_rows == result.summary().metrics["rows_non_finite"] == 5
    assert result.rows_in == len(keys) == result.rows_written + result.duplicates_dropped

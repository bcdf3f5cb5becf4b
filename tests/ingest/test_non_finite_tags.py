"""join-tags under the non-finite rule (laion_spark.lake.finite): duplicates keep the largest finite tag, NaN and the
infinities are never ordered above a real number, and the run summary counts them."""

from __future__ import annotations

import numpy as np
from test_join_tags import joined_rows, raw_table, row_hashes, write_parts, write_tags

from laion_spark.ingest import join_tags
from laion_spark.ingest.params import JoinTags

NAN, INF = float("nan"), float("inf")
FLOAT32_LOWEST = float(np.finfo(np.float32).min)  # finite: a value (Sail's grouped max gives it for -inf alone)


def test_a_real_number_wins_over_nan_and_infinity_among_duplicates_and_they_are_counted(sail, tmp_path) -> None:
    table = raw_table("laion2B-en")
    metadata = write_parts(tmp_path / "metadata", table)
    h = list(dict.fromkeys(row_hashes(table)))  # distinct hashes (the table repeats a few rows)
    # hash 0: 9.0 and NaN; 1: +inf and 3.0; 2: NaN only; 3: -inf and 2.0; 4: -inf only; 5: 4.0 alone;
    # 6: float32's lowest alone; 7: -inf twice; 8: null and -inf; 9: null twice; 10: null and 5.0
    which = [0, 0, 1, 1, 2, 3, 3, 4, 5, 6, 7, 7, 8, 8, 9, 9, 10, 10]
    values = [9.0, NAN, INF, 3.0, NAN, -INF, 2.0, -INF, 4.0, FLOAT32_LOWEST, -INF, -INF, None, -INF, None, None]
    values += [None, 5.0]
    hashes = [h[i] for i in which]
    tags = write_tags(tmp_path / "aesthetic.parquet", hashes, "aesthetic", values)
    # three distinct values: Sail 0.7 reads a NaN in a row group whose other values are all equal as that value
    watermark = write_tags(tmp_path / "watermark.parquet", [h[0], h[0], h[1]], "pwatermark", [NAN, 0.25, 0.5])

    summary = join_tags(
        sail,
        JoinTags(
            metadata=metadata, collection="laion2B-en", lake=tmp_path / "lake", aesthetic_tags=tags,
            watermark_tags=watermark,
        ),
    )  # fmt: skip

    by_hash = {r["hash"]: r for r in joined_rows(tmp_path / "lake", "laion2B-en")}
    assert by_hash[h[0]]["aesthetic"] == 9.0 and by_hash[h[0]]["pwatermark"] == 0.25
    assert by_hash[h[1]]["aesthetic"] == 3.0
    assert by_hash[h[2]]["aesthetic"] is None
    assert by_hash[h[3]]["aesthetic"] == 2.0
    assert by_hash[h[4]]["aesthetic"] is None
    assert by_hash[h[5]]["aesthetic"] == 4.0
    assert by_hash[h[6]]["aesthetic"] == FLOAT32_LOWEST
    assert by_hash[h[7]]["aesthetic"] is None and by_hash[h[8]]["aesthetic"] is None
    assert by_hash[h[9]]["aesthetic"] is None and by_hash[h[10]]["aesthetic"] == 5.0
    assert summary.metrics["aesthetic_non_finite_dropped"] == 8
    # a hash whose rows have no finite value (7, 8, 9) is still one of the table's hashes, not a duplicate
    assert summary.metrics["aesthetic_duplicates_dropped"] == len(hashes) - 11
    assert summary.metrics["watermark_non_finite_dropped"] == 1
    assert summary.metrics["aesthetic_tag_rows"] == len(hashes)
    assert summary.metrics["rows_out"] == summary.metrics["rows_in"] == table.num_rows

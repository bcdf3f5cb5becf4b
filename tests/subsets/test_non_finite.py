"""subsets under the non-finite rule (laion_spark.lake.finite): an infinite score is in no subset (laion_art
included), an infinite or NaN tag fails safety (-inf would pass ``< 0.5``), and the run summary counts both."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lake_builders import make_joined, write_joined

from laion_spark.lake.tables import read_table
from laion_spark.subsets.build import build_subsets
from laion_spark.subsets.params import BuildSubsets, SafetyConfig, SubsetsConfig, SubsetSpec


def _with(table: pa.Table, column: str, rows: dict[int, float]) -> pa.Table:
    values = table.column(column).to_numpy(zero_copy_only=False).astype(np.float32)
    mask = table.column(column).is_null().to_numpy(zero_copy_only=False)
    for row, value in rows.items():
        values[row], mask[row] = value, False
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, mask=mask))


def test_infinite_scores_and_non_finite_tags_are_kept_out_of_every_subset_and_counted(sail, tmp_path) -> None:
    table = make_joined(300, seed=4)
    inf = float("inf")
    table = _with(table, "aesthetic", {20: inf, 21: -inf, 22: inf, 23: 9.5, 24: 9.5})
    table = _with(table, "pwatermark", {20: 0.1, 21: 0.1, 22: 0.1, 23: -inf, 24: 0.1})
    table = _with(table, "punsafe", {20: 0.1, 21: 0.1, 22: 0.1, 23: 0.1, 24: -inf})
    write_joined(sail, tmp_path, table)
    config = SubsetsConfig(
        safety=SafetyConfig(),
        subsets=(SubsetSpec("laion_art", 8.0), SubsetSpec("everything", -1e9)),
    )
    summaries = {s.target: s.metrics for s in build_subsets(sail, BuildSubsets(lake=tmp_path, config=config))}

    for name in ("subset_laion_art", "subset_everything"):
        scores = read_table(sail, tmp_path / name).select("AESTHETIC_SCORE", "punsafe", "pwatermark").toArrow()
        for column in scores.columns:
            values = column.drop_null().to_numpy()
            assert np.isfinite(values).all(), name  # no NaN, no +inf (which is > 8), no -inf tag
    hashes = set(read_table(sail, tmp_path / "subset_everything").select("hash").toArrow()["hash"].to_pylist())
    assert not hashes & set(pc.take(table["hash"], [20, 21, 22, 23, 24]).to_pylist())
    metrics = summaries["subset_laion_art"]
    bad = [pc.fill_null(pc.or_(pc.is_nan(table[c]), pc.is_inf(table[c])), False) for c in ("pwatermark", "punsafe")]
    expected_tags = pc.sum(pc.or_(*bad)).as_py()
    assert metrics["non_finite_tags"] == expected_tags >= 3  # the two -inf tags and make_joined's NaN one
    assert metrics["non_finite_score"] >= 3  # the three infinite scores that pass safety (and make_joined's NaN)
    assert metrics["passed_safety"] == metrics["rows"] + metrics["below_threshold"] + metrics["missing_score"]
    assert metrics["joined"] == metrics["passed_safety"] + metrics["failed_safety"] + metrics["failed_null_tags"]

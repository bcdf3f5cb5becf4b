"""Subsets: LAION's safety filter, strict thresholds, column order, shuffle, run counts; the pipeline config."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import REPO, run_cli
from deltalake import DeltaTable
from lake_builders import make_joined, write_joined
from lake_checks import assert_same_tables

from laion_spark.config_file import PipelineConfigError
from laion_spark.lake.tables import read_table
from laion_spark.pipeline.config import load_pipeline_config, parse_pipeline_config
from laion_spark.subsets.build import SUBSET_COLUMNS, SubsetError, build_subsets
from laion_spark.subsets.params import BuildSubsets, SafetyConfig, SubsetsConfig, SubsetSpec

CONFIG = SubsetsConfig(
    safety=SafetyConfig(),
    subsets=(
        SubsetSpec("laion_art", 8.0, extra_columns=("LANGUAGE",)),
        SubsetSpec("laion_aesthetic", 7.0),
        SubsetSpec("aesthetics_6plus", 6.0),
        SubsetSpec("aesthetics_6_5plus", 6.5, collections=("laion2B-en",)),
    ),
    shuffle_seed=7,
    target_files=3,
)


def expected_subset(joined: pa.Table, spec: SubsetSpec, safety: SafetyConfig) -> pa.Table:
    """The subset by Arrow's SQL (Kleene) logic: a null comparison filters the row out."""
    w_ok = pc.less(joined["pwatermark"], safety.pwatermark_below)
    u_ok = pc.less(joined["punsafe"], safety.punsafe_below)
    if safety.keep_null_tags:
        w_ok, u_ok = pc.fill_null(w_ok, True), pc.fill_null(u_ok, True)
    keep = pc.and_kleene(pc.and_kleene(w_ok, u_ok), pc.greater(joined["aesthetic"], spec.threshold))
    if spec.collections:
        keep = pc.and_kleene(keep, pc.is_in(joined["collection"], pa.array(spec.collections)))
    return joined.filter(keep)


def keys(table: pa.Table, score: str) -> list[tuple]:
    """Sortable multiset of the identifying columns of a table's rows."""
    cols = [table[c].to_pylist() for c in ("hash", "URL", "TEXT", "collection", score)]
    return sorted(zip(*cols, strict=True), key=repr)


@pytest.fixture(scope="module")
def built(sail, tmp_path_factory):
    """A lake with ``joined`` and the subsets of CONFIG built on Sail."""
    lake_dir = tmp_path_factory.mktemp("subsets") / "lake"
    joined = make_joined()
    write_joined(sail, lake_dir, joined)
    summaries = build_subsets(sail, BuildSubsets(lake=lake_dir, config=CONFIG))
    return lake_dir, joined, {s.target: s for s in summaries}


def test_every_subset_row_passes_its_threshold_and_the_safety_filter(built):
    lake_dir, _, _ = built
    for spec in CONFIG.subsets:
        subset = DeltaTable(str(lake_dir / spec.table)).to_pyarrow_table()
        assert subset.num_rows > 0
        for column, limit in (("pwatermark", 0.8), ("punsafe", 0.5)):
            values = subset[column]
            assert values.null_count == 0 and pc.all(pc.less(values, limit)).as_py(), (spec.name, column)
        score = subset["AESTHETIC_SCORE"]
        assert score.null_count == 0 and pc.all(pc.greater(score, spec.threshold)).as_py(), spec.name


def test_subsets_equal_laion_sql_semantics_on_the_joined_rows(built):
    lake_dir, joined, _ = built
    for spec in CONFIG.subsets:
        subset = DeltaTable(str(lake_dir / spec.table)).to_pyarrow_table()
        assert keys(subset, "AESTHETIC_SCORE") == keys(expected_subset(joined, spec, CONFIG.safety), "aesthetic")


def test_each_subset_is_contained_in_joined(sail, built):
    lake_dir, _, _ = built
    joined = read_table(sail, lake_dir / "joined")
    for spec in CONFIG.subsets:
        subset = read_table(sail, lake_dir / spec.table)
        on = [subset[c].eqNullSafe(joined[c]) for c in ("hash", "URL", "TEXT", "collection", "pwatermark", "punsafe")]
        on.append(subset["AESTHETIC_SCORE"] == joined["aesthetic"])
        assert subset.join(joined, on, "left_anti").count() == 0, spec.name


def test_threshold_is_strict_and_nan_or_edge_tags_fail(built):
    lake_dir, joined, _ = built
    planted = set(joined["hash"].to_pylist()[:9])
    for spec in CONFIG.subsets:
        hashes = set(DeltaTable(str(lake_dir / spec.table)).to_pyarrow_table()["hash"].to_pylist())
        on_threshold = joined["hash"].to_pylist()[[8.0, 7.0, 6.0, 6.5].index(spec.threshold)]
        assert on_threshold not in hashes, spec.name
        assert not (planted - set(joined["hash"].to_pylist()[:4])) & hashes, spec.name


def test_columns_follow_laion_order_then_collection_then_extras(built):
    lake_dir, _, _ = built
    art = DeltaTable(str(lake_dir / "subset_laion_art")).schema().to_arrow()
    plain = DeltaTable(str(lake_dir / "subset_laion_aesthetic")).schema().to_arrow()
    assert [f.name for f in plain] == list(SUBSET_COLUMNS)
    assert [f.name for f in art] == [*SUBSET_COLUMNS, "LANGUAGE"]


def test_collections_filter_limits_a_subset(built):
    lake_dir, _, _ = built
    subset = DeltaTable(str(lake_dir / "subset_aesthetics_6_5plus")).to_pyarrow_table()
    assert set(subset["collection"].to_pylist()) == {"laion2B-en"}


def test_run_summary_counts_add_up_per_subset(sail, built):
    lake_dir, joined, summaries = built
    runs = read_table(sail, lake_dir / "runs").toPandas()
    for spec in CONFIG.subsets:
        m = summaries[spec.table].metrics
        recorded = runs[runs["run_id"] == summaries[spec.table].run_id].set_index("metric")["value"].to_dict()
        assert recorded == m
        scope = (
            joined.filter(pc.is_in(joined["collection"], pa.array(spec.collections))) if spec.collections else joined
        )
        assert m["joined"] == scope.num_rows
        assert m["joined"] == m["passed_safety"] + m["failed_safety"] + m["failed_null_tags"]
        assert m["passed_safety"] == m["rows"] + m["below_threshold"] + m["missing_score"]
        assert m["rows"] == DeltaTable(str(lake_dir / spec.table)).to_pyarrow_table().num_rows
        assert m["failed_null_tags"] > 0 and m["kept_null_tags"] == 0


def test_seeded_shuffle_writes_target_files_in_a_reproducible_order(sail, built, tmp_path):
    lake_dir, joined, summaries = built
    spec = CONFIG.subsets[2]
    assert summaries[spec.table].metrics["files"] == CONFIG.target_files
    first = DeltaTable(str(lake_dir / spec.table))
    assert len(first.file_uris()) == CONFIG.target_files
    again = tmp_path / "lake"
    write_joined(sail, again, joined)
    build_subsets(sail, BuildSubsets(lake=again, config=replace(CONFIG, subsets=(spec,))))
    other_seed = tmp_path / "other"
    write_joined(sail, other_seed, joined)
    build_subsets(sail, BuildSubsets(lake=other_seed, config=replace(CONFIG, subsets=(spec,), shuffle_seed=8)))

    def files(path: Path) -> list[list[int]]:
        uris = DeltaTable(str(path / spec.table)).file_uris()
        return sorted(pq.read_table(u.removeprefix("file://"))["hash"].to_pylist() for u in uris)

    assert files(lake_dir) == files(again)
    assert files(lake_dir) != files(other_seed)
    for rows in files(lake_dir):
        assert rows != sorted(rows) and len(rows) > 10


def test_keep_null_tags_lets_null_tags_pass_but_not_failing_ones(sail, tmp_path):
    joined = make_joined(rows=300, seed=3)
    write_joined(sail, tmp_path, joined)
    config = replace(
        CONFIG, safety=SafetyConfig(keep_null_tags=True), subsets=(SubsetSpec("six", 6.0),), shuffle_seed=None
    )
    (summary,) = build_subsets(sail, BuildSubsets(lake=tmp_path, config=config))
    subset = DeltaTable(str(tmp_path / "subset_six")).to_pyarrow_table()
    assert keys(subset, "AESTHETIC_SCORE") == keys(
        expected_subset(joined, config.subsets[0], config.safety), "aesthetic"
    )
    assert subset["pwatermark"].null_count > 0
    assert summary.metrics["failed_null_tags"] == 0 and summary.metrics["kept_null_tags"] > 0
    assert joined["hash"].to_pylist()[6] not in subset["hash"].to_pylist()  # NaN tag still fails


def test_changing_a_subsets_columns_is_refused_naming_the_table(sail, tmp_path):
    write_joined(sail, tmp_path, make_joined(rows=120))
    plain = replace(CONFIG, subsets=(SubsetSpec("art", 8.0),))
    build_subsets(sail, BuildSubsets(lake=tmp_path, config=plain))
    with pytest.raises(SubsetError, match="subset_art.*LANGUAGE"):
        build_subsets(
            sail,
            BuildSubsets(
                lake=tmp_path, config=replace(CONFIG, subsets=(SubsetSpec("art", 8.0, extra_columns=("LANGUAGE",)),))
            ),
        )


def test_unknown_extra_column_is_refused(sail, tmp_path):
    write_joined(sail, tmp_path, make_joined(rows=60))
    bad = replace(CONFIG, subsets=(SubsetSpec("art", 8.0, extra_columns=("NSFW",)),))
    with pytest.raises(SubsetError, match="'NSFW'"):
        build_subsets(sail, BuildSubsets(lake=tmp_path, config=bad))


def test_default_config_file_has_laions_four_subsets():
    config = load_pipeline_config()
    thresholds = {s.table: s.threshold for s in config.subsets}
    assert thresholds == {
        "subset_laion_art": 8.0,
        "subset_laion_aesthetic": 7.0,
        "subset_aesthetics_6plus": 6.0,
        "subset_aesthetics_6_5plus": 6.5,
    }
    assert config.safety == SafetyConfig(pwatermark_below=0.8, punsafe_below=0.5, keep_null_tags=False)
    assert config.subsets[0].extra_columns == ("LANGUAGE",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"subsets": [{"name": "a", "threshold": 7}], "shufle_seed": 1}, r"shufle_seed: unknown key"),
        ({"subsets": [{"name": "a", "threshold": "high"}]}, r"subsets\[0\]\.threshold: expected a number"),
        ({"subsets": [{"name": "a", "threshold": 7}, {"name": "a", "threshold": 8}]}, r"subsets\[1\]\.name: duplicate"),
        ({"subsets": [{"name": "a", "threshold": 7, "colour": 1}]}, r"subsets\[0\]\.colour: unknown key"),
        ({"subsets": [{"name": "a", "threshold": 7}], "safety": {"keep_null_tags": "no"}}, r"safety\.keep_null_tags"),
        ({"subsets": [{"name": "a", "threshold": 7}], "target_files": 0}, r"target_files: expected a positive"),
        ({"subsets": [{"name": "a", "threshold": 7, "collections": ["laion5B"]}]}, r"subsets\[0\]\.collections"),
        ({"safety": {}}, r"subsets: missing required key"),
    ],
)
def test_bad_config_is_refused_naming_the_key(data, message):
    with pytest.raises(PipelineConfigError, match=message):
        parse_pipeline_config(data)


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("subsets:\n  - name: x\n    threshold: [1]\n")
    with pytest.raises(PipelineConfigError, match=r"pipeline\.yaml: subsets\[0\]\.threshold"):
        load_pipeline_config(path)


@pytest.mark.classic
def test_classic_spark_delta_subsets_match_sail_delta(classic_run, reference_run):
    """Every configured subset on classic Spark: the same rows, columns and order of columns as on Sail, shuffled
    into the configured number of files (one collection and an extra column for ``en_5plus``)."""
    config = load_pipeline_config(classic_run / "pipeline.yaml")
    tables = [s.table for s in config.subsets]
    non_empty = [t for t in tables if DeltaTable(str(reference_run / "lake" / t)).to_pyarrow_table().num_rows]
    assert "subset_en_5plus" in non_empty and len(non_empty) >= 3
    assert_same_tables(classic_run, reference_run, non_empty)
    for table in tables:
        ours, theirs = (DeltaTable(str(run / "lake" / table)) for run in (classic_run, reference_run))
        assert ours.schema().to_arrow().names == theirs.schema().to_arrow().names, table
        if ours.to_pyarrow_table().num_rows >= config.target_files:
            assert len(ours.file_uris()) == config.target_files, table


def test_spark_submit_entry_point_builds_the_configured_subsets(built, tmp_path):
    lake_dir, joined, _ = built
    lake = tmp_path / "lake"
    shutil.copytree(lake_dir / "joined", lake / "joined")
    config = tmp_path / "pipeline.yaml"
    config.write_text("subsets:\n  - {name: seven, threshold: 7}\nshuffle_seed: null\ntarget_files: 2\n")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "jobs" / "subsets.py"),
            "--engine",
            "sail",
            "--lake",
            str(lake),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    expected = expected_subset(joined, SubsetSpec("seven", 7.0), SafetyConfig())
    assert keys(DeltaTable(str(lake / "subset_seven")).to_pyarrow_table(), "AESTHETIC_SCORE") == keys(
        expected, "aesthetic"
    )


def test_cli_reports_a_bad_config_in_one_line(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("subsets:\n  - {name: seven, threshold: 7, treshold: 8}\n")
    proc = run_cli("subsets", "--lake", str(tmp_path), "--config", str(config), check=False)
    assert proc.returncode == 2
    assert "error: " in proc.stderr and "subsets[0].treshold: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr

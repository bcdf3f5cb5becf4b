"""A pipeline whose root (so its lake and every output) has a space, a '#' and a non-ASCII letter in its path runs
end to end on Sail and on classic Spark, and writes the same tables as the reference run at a plain path; nothing
lands beside the root (no percent-encoded twin folder, nothing in its parent)."""

from __future__ import annotations

import pytest
from conftest import run_cli
from lake_checks import assert_same_run
from pipeline_runs import ODD_ROOT, rooted

from laion_spark.pipeline import run_pipeline
from laion_spark.pipeline.config import load_pipeline_config


def _only_the_root_beside(parent, root) -> None:
    assert [p.name for p in parent.iterdir()] == [root.name]


@pytest.mark.slow
def test_the_pipeline_at_a_root_with_a_space_and_a_hash_on_sail_matches_the_reference(
    sail, sample, reference_run, tmp_path
) -> None:
    root = tmp_path / "odd" / ODD_ROOT
    run_pipeline(sail, load_pipeline_config(rooted(root, sample)), echo=lambda line: None)
    assert_same_run(root, reference_run)
    assert (root / "report" / "index.html").is_file()
    _only_the_root_beside(tmp_path / "odd", root)


@pytest.mark.classic
def test_the_pipeline_at_a_root_with_a_space_and_a_hash_on_classic_spark(classic_run) -> None:
    """The shared classic run (``classic_run``: spark-submit of the pipeline) is the one at the odd root; its tables
    equal the reference run's (``test_engines.py``'s spark-submit test) and the CLI's ``sql`` reads them there."""
    assert classic_run.name == ODD_ROOT
    sql = run_cli(
        "sql", "SELECT count(*) AS n FROM joined", "--lake", str(classic_run / "lake"), "--engine", "local", "--csv"
    )
    assert sql.stdout.split()[-1] == "900", sql.stdout + sql.stderr
    _only_the_root_beside(classic_run.parent, classic_run)

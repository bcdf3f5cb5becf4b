"""The wheel carries ``conf/``: installed outside the checkout, a Spark command finds its default profiles and YAML."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from deltalake import DeltaTable
from installs import clean_env, deps_venv
from lake_builders import make_joined, write_joined

from laion_spark.pipeline.config import load_pipeline_config


@pytest.mark.dist
def test_an_installed_wheel_runs_subsets_with_its_packaged_conf(sail, dist, tmp_path: Path) -> None:
    wheel, _ = dist
    venv = tmp_path / "venv"
    python = deps_venv(venv, with_pip=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True)
    env = clean_env()
    where = subprocess.check_output(
        [python, "-c", "import laion_spark.engine as e, laion_spark; print(laion_spark.__file__); print(e.conf_dir())"],
        text=True,
        cwd=tmp_path,
        env=env,
    ).split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    assert sorted(p.name for p in Path(where[1]).iterdir()) == sorted(p.name for p in (REPO / "conf").iterdir())

    lake = tmp_path / "lake"
    write_joined(sail, lake, make_joined(300))
    proc = subprocess.run(
        [venv / "bin" / "laion-spark", "subsets", "--lake", str(lake)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for spec in load_pipeline_config(REPO / "conf" / "pipeline.yaml").subsets:
        assert DeltaTable(str(lake / spec.table)).version() == 0


def test_a_conf_folder_given_by_the_environment_wins_and_a_checkout_reads_conf(tmp_path, monkeypatch) -> None:
    """The fast twin of the wheel test: the order ``conf_dir`` looks in, the environment first, then (no packaged
    copy in a checkout) the repository's ``conf/``, whose files are the ones the wheel must carry."""
    from laion_spark.engine import conf_dir
    from laion_spark.subsets.params import default_config_path

    assert Path(str(conf_dir())) == REPO / "conf"
    (tmp_path / "pipeline.yaml").write_text("subsets: [{name: mine, threshold: 1}]\n")
    monkeypatch.setenv("LAION_SPARK_CONF_DIR", str(tmp_path))
    assert default_config_path() == tmp_path / "pipeline.yaml"
    assert [s.name for s in load_pipeline_config().subsets] == ["mine"]

"""The wheel carries ``conf/``: installed outside the checkout, a Spark command finds its default profiles and YAML."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO
from deltalake import DeltaTable
from lake_builders import make_joined, write_joined

from laion_spark.pipeline.config import load_pipeline_config

SOURCES = ("laion_spark", "conf", "pyproject.toml", "setup.py", "README.md")


def build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` of a copy of the sources (the checkout gets no build folder)."""
    src = tmp_path / "src"
    for name in SOURCES:
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=src,
        check=True,
        timeout=600,
    )
    return next(tmp_path.glob("laion_spark-*.whl"))


@pytest.mark.slow
def test_an_installed_wheel_runs_subsets_with_its_packaged_conf(sail, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True)
    # The dependencies come from this venv's site-packages (appended after the new venv's own, which holds
    # the wheel); a .pth line does not run the editable-install hook that lives there.
    purelib = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LAION_SPARK_CONF_DIR")}
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

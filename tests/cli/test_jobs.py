"""``jobs/``: one thin spark-submit entry per stage (plus the pipeline), each running a real command."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO
from typer.main import get_command

from laion_spark.cli import app
from laion_spark.pipeline import PIPELINE_STAGES


def entries() -> dict[str, str]:
    """``{file name: command}`` of every ``jobs/*.py``."""
    found = {}
    for path in sorted((REPO / "jobs").glob("*.py")):
        match = re.search(r'run_job\("([a-z-]+)"\)', path.read_text())
        assert match, f"{path.name} does not call run_job"
        found[path.name] = match[1]
    return found


def test_every_stage_and_the_pipeline_have_an_entry_that_runs_a_cli_command() -> None:
    jobs = entries()
    commands = set(get_command(app).commands)
    assert set(jobs.values()) <= commands
    for stage in PIPELINE_STAGES.values():
        assert jobs.get(stage.command.replace("-", "_") + ".py") == stage.command, stage.command
    assert jobs["pipeline.py"] == "pipeline"


def test_an_entry_shows_its_commands_help_without_a_spark_session() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "pipeline.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout and "--engine" in proc.stdout


@pytest.mark.slow  # a fresh interpreter imports umap-learn (numba): about 10 s
def test_an_entry_named_like_a_package_does_not_shadow_it(tmp_path) -> None:
    entry = tmp_path / "umap.py"  # as jobs/umap.py: run as a script, its folder first on sys.path
    entry.write_text(
        "from laion_spark.cli.entrypoint import forget_entry_folder\n"
        "forget_entry_folder()\n"
        "import umap\n"
        "print(umap.__name__, hasattr(umap, 'UMAP'))\n"
    )
    proc = subprocess.run([sys.executable, str(entry)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["umap", "True"]


def test_forgetting_the_entry_folder_leaves_sys_path_alone_outside_a_script() -> None:
    script = (
        "import sys; before = list(sys.path); "
        "from laion_spark.cli.entrypoint import forget_entry_folder; forget_entry_folder(); "
        "print(sys.path == before)"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True"]

"""Interpreters outside the checkout: the project's dependencies without the project, and its built artefacts."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO


def deps_venv(folder: Path, *, with_pip: bool = False) -> Path:
    """A virtualenv at ``folder`` that sees this venv's packages (a ``.pth`` line) but not laion_spark.

    The ``.pth`` line appends this venv's site-packages after the new venv's own, and does not run the
    editable-install hook that lives there, so ``import laion_spark`` finds only what is installed or shipped.
    Returns the new interpreter.
    """
    subprocess.run(
        [sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(folder)], check=True, timeout=300
    )
    python = folder / "bin" / "python"
    purelib = subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would put the checkout on the path."""
    drop = ("PYTHONPATH", "LAION_SPARK_CONF_DIR", "SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def make_dist(folder: Path) -> tuple[Path, Path]:
    """``make dist DIST=folder`` with this interpreter: ``(wheel, zip for --py-files)``.

    ``-o`` keeps make from reinstalling this venv (its ``venv`` prerequisite) when ``pyproject.toml`` is newer
    than the venv's stamp, as in a fresh checkout or a second worktree sharing one venv.
    """
    venv = Path(sys.prefix)
    make = ["make", "-s", "-C", str(REPO), "-o", f"{venv}/.installed", "dist"]
    subprocess.run([*make, f"DIST={folder}", f"PY={sys.executable}", f"VENV={venv}"], check=True, timeout=600)
    return next(folder.glob("laion_spark-*.whl")), folder / "laion_spark.zip"


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``make dist``'s wheel and zip, built once for every test that needs them."""
    return make_dist(tmp_path_factory.mktemp("dist"))

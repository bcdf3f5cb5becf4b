"""Start-up: the command line loads no engine, and ``--help`` / ``--version`` answer without one."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pyspark", "numba", "torch", "matplotlib", "numpy", "pyarrow", "pandas", "open_clip")


def imported_modules(code: str) -> set[str]:
    """Top-level packages imported by ``python -X importtime -c CODE``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_importing_the_cli_imports_no_engine_numba_torch_or_matplotlib() -> None:
    loaded = imported_modules("import laion_spark.cli")
    assert "typer" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_and_version_load_no_engine() -> None:
    for args in (["--help"], ["--version"]):
        code = f"import sys; sys.argv = ['laion-spark', *{args!r}]; from laion_spark.cli import app; app()"
        assert not imported_modules(code) & set(HEAVY)

""".ci/run checks the disk before it installs anything: too little free space is one line and exit code 2; the tools'
version lines never fail the run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

CI_RUN = REPO / ".ci" / "run"
#: The commands .ci/run installs when they are missing (its ``command -v`` checks), stood in for so it installs none.
_TOOLS = re.findall(r"command -v (\S+)", CI_RUN.read_text())


def _run_ci(tmp_path: Path, free_kib: int, version: str = "echo 1.0") -> subprocess.CompletedProcess[str]:
    """.ci/run with ``df`` reporting ``free_kib`` free, ``make`` recording its arguments instead of running, and each
    tool it checks for printing its version with the shell command ``version``."""
    shims = tmp_path / "bin"
    shims.mkdir()
    scripts = {
        "df": f'echo "Filesystem 1024-blocks Used Available Capacity Mounted on"\necho "/dev/x 1 1 {free_kib} 1% /"',
        "make": f'echo "$@" > {tmp_path / "make-args"}',
        **{tool: version for tool in _TOOLS},
    }
    for name, body in scripts.items():
        (shims / name).write_text(f"#!/bin/sh\n{body}\n")
        (shims / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(CI_RUN)], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_too_little_disk_is_one_line_and_exit_2_before_anything_runs(tmp_path: Path) -> None:
    result = _run_ci(tmp_path, free_kib=1024 * 1024)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f".ci/run: {REPO} has 1 GiB free; the install and the tests need about ")
    assert not (tmp_path / "make-args").exists()


@pytest.mark.parametrize(
    "version",
    [
        "echo 1.0",
        # More than a pipe holds: a reader that stops after the first line (head) would leave the tool writing into
        # a closed pipe, and pipefail would end the run there, before the tests (mvn -v did so on a cold start).
        "seq 1 200000",
    ],
    ids=["one-line-version", "version-longer-than-a-pipe"],
)
def test_enough_disk_goes_on_to_every_test(tmp_path: Path, version: str) -> None:
    result = _run_ci(tmp_path, free_kib=100 * 1024 * 1024, version=version)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("disk: 100 GiB free, about ")
    assert (tmp_path / "make-args").read_text().split()[0] == "test-all"

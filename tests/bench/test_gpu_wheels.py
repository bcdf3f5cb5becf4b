"""bench/gpu_wheels.py's bookkeeping (no download): wheel names, the pins, stale versions, the carried size."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

import pytest

from bench.gpu_wheels import FIXED, FROM_VENV, main, normalise, pins, stale_wheels, tree_bytes, wheel_identity


def test_wheel_names_are_read_as_pep_427_spells_them() -> None:
    assert wheel_identity("open_clip_torch-3.3.0-py3-none-any.whl") == ("open_clip_torch", "3.3.0")
    assert wheel_identity("mmh3-5.3.1-cp312-cp312-manylinux_2_28_x86_64.whl") == ("mmh3", "5.3.1")
    assert normalise("googleapis-common-protos") == normalise("googleapis_common.protos") == "googleapis_common_protos"
    with pytest.raises(ValueError):
        wheel_identity("pysail.tar.xz")


def test_the_pins_are_this_venvs_versions_and_the_fixed_client_dependencies() -> None:
    found = pins()
    for name in FROM_VENV:
        assert found[name] == importlib.metadata.version(name)
    assert found["pyspark-client"] == importlib.metadata.version("pyspark")
    assert found["pysail"] == importlib.metadata.version("pysail")
    assert {k: found[k] for k in FIXED} == FIXED


def test_a_wheel_of_another_version_is_stale_and_the_packages_own_wheel_is_kept(tmp_path: Path) -> None:
    for name in (
        "open_clip_torch-3.3.0-py3-none-any.whl",
        "timm-1.0.30-py3-none-any.whl",
        "laion_spark-0.1.0-py3-none-any.whl",
        "grpcio_status-1.67.1-py3-none-any.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    wanted = {"open_clip_torch": "3.3.0", "timm": "1.0.31", "grpcio-status": "1.67.1"}
    assert [p.name for p in stale_wheels(tmp_path, wanted)] == ["timm-1.0.30-py3-none-any.whl"]


def test_the_carried_tree_counts_tracked_and_unignored_files_but_not_ignored_ones(tmp_path: Path) -> None:
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / ".gitignore").write_text("big/\n")
    (tmp_path / "tracked.txt").write_bytes(b"x" * 100)
    subprocess.run([*git, "add", "tracked.txt", ".gitignore"], check=True)
    (tmp_path / "untracked.txt").write_bytes(b"y" * 50)
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "wheel.whl").write_bytes(b"z" * 10_000)
    assert tree_bytes(tmp_path) == 100 + 50 + len("big/\n")


def test_a_folder_argument_that_is_a_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "wheels"
    target.write_text("not a folder")
    assert main([str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {target} is not a folder")

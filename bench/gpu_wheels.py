"""Prepare the folder that travels to a bare GPU machine for ``bench/gpu_check.sh`` (``make gpu-wheels``).

    .venv/bin/python -m bench.gpu_wheels [FOLDER]          (default .gpu-wheels, git-ignored)

The GPU machine runs Python 3.12 with torch, torchvision, timm, pillow, pyarrow, pandas, numpy, pyyaml,
grpcio, protobuf, numba, matplotlib ... but not open_clip, ftfy, wcwidth, mmh3, pysail, the Spark
Connect client or this package, and it reaches no registry. FOLDER gets:

* cp312 / py3 wheels of ``open_clip_torch``, ``ftfy``, ``wcwidth``, ``mmh3`` and ``timm`` at the versions
  this venv holds (the versions the project is tested with; timm too, so that open_clip's
  ``timm>=1.0.17`` holds whatever the machine has);
* ``pyspark-client`` at this venv's pyspark version (the pure-Python Spark Connect client, built here
  from its sdist: the full pyspark wheel is ~400 MB), ``grpcio-status`` 1.67.1 and
  ``googleapis-common-protos`` 1.65.0 (the oldest the client accepts: their generated code loads on any
  protobuf runtime from 5.26 on, whatever the machine's protobuf is);
* ``pysail.tar.xz``: the files of the pysail wheel, xz-compressed (the wheel is 63 MB, about 36 MB as
  xz: the two would not fit in one call's 64 MiB beside the rest), unpacked there with Python's tarfile;
* this package's own wheel, built from the working tree now (``build/`` removed first, as ``make dist``);
* ``MANIFEST.json``: the pins, the commit the wheel was built from, every file's size.

Downloads are kept between runs; a wheel of another version than the pins is removed (two versions of
one package would stop the install there). Exits 1 when the working tree plus FOLDER would be over the
64 MiB a device call carries, 2 with one ``error:`` line for bad input.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: What one device call carries: the working tree and the carried paths together.
CARRY_LIMIT = 64 * 1024 * 1024
#: Taken at this venv's versions.
FROM_VENV = ("open_clip_torch", "ftfy", "wcwidth", "mmh3", "timm")
#: Fixed: the oldest the Spark Connect client accepts (see the module docstring).
FIXED = {"grpcio-status": "1.67.1", "googleapis-common-protos": "1.65.0"}
SAIL_ARCHIVE = "pysail.tar.xz"
MANIFEST = "MANIFEST.json"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
)


def normalise(name: str) -> str:
    """A distribution name as wheel file names spell it (PEP 427: runs of ``-_.`` -> ``_``, lower case)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_identity(filename: str) -> tuple[str, str]:
    """(normalised name, version) of a wheel file name; ValueError for a name that is not a wheel's."""
    parts = filename.split("-")
    if not filename.endswith(".whl") or len(parts) < 5:
        raise ValueError(f"{filename!r} is not a wheel file name")
    return normalise(parts[0]), parts[1]


def pins() -> dict[str, str]:
    """Distribution -> version of every wheel fetched: :data:`FROM_VENV` at this venv's versions,
    ``pyspark-client`` at pyspark's, ``pysail`` at the venv's, then :data:`FIXED`.

    Raises ``importlib.metadata.PackageNotFoundError`` when the venv lacks one of them.
    """
    found = {name: importlib.metadata.version(name) for name in FROM_VENV}
    found["pyspark-client"] = importlib.metadata.version("pyspark")
    found["pysail"] = importlib.metadata.version("pysail")
    return {**found, **FIXED}


def stale_wheels(folder: Path, wanted: dict[str, str], own: str = "laion_spark") -> list[Path]:
    """Wheels in ``folder`` that are not one of ``wanted`` (name -> version) nor this package's own."""
    keep = {(normalise(name), version) for name, version in wanted.items()}
    stale = []
    for path in sorted(folder.glob("*.whl")):
        name, version = wheel_identity(path.name)
        if name != own and (name, version) not in keep:
            stale.append(path)
    return stale


def tree_bytes(repo: Path) -> int:
    """Bytes of what a device call sends besides the carried paths: tracked files and untracked ones git
    does not ignore (links counted as links), and ``shared/`` when the checkout has one.

    Raises ``subprocess.CalledProcessError`` outside a git checkout.
    """
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    paths = {repo / name for name in listing.decode().split("\0") if name}
    shared = repo / "shared"
    if shared.is_dir():
        paths |= {p for p in shared.rglob("*") if p.is_file() or p.is_symlink()}
    return sum(p.lstat().st_size for p in paths if p.is_symlink() or p.is_file())


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def _binary_flags() -> list[str]:
    flags = ["--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    for platform in PLATFORMS:
        flags += ["--platform", platform]
    return flags


def fetch_wheels(folder: Path, wanted: dict[str, str]) -> None:
    """Download the binary wheels of ``wanted`` (not pysail, not pyspark-client) that ``folder`` lacks."""
    have = {wheel_identity(p.name) for p in folder.glob("*.whl")}
    missing = [
        f"{name}=={version}"
        for name, version in wanted.items()
        if name not in ("pysail", "pyspark-client") and (normalise(name), version) not in have
    ]
    if missing:
        _pip("download", "-q", *_binary_flags(), "-d", str(folder), *missing)


def build_client(folder: Path, version: str) -> None:
    """Build the ``pyspark-client`` wheel of ``version`` from its sdist, unless ``folder`` holds it."""
    if any(wheel_identity(p.name) == ("pyspark_client", version) for p in folder.glob("*.whl")):
        return
    with tempfile.TemporaryDirectory() as scratch:
        _pip("download", "-q", "--no-deps", "--no-binary=:all:", "-d", scratch, f"pyspark-client=={version}")
        (sdist,) = Path(scratch).glob("pyspark_client-*.tar.gz")
        _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(folder), str(sdist))


def pack_sail(folder: Path, version: str) -> None:
    """Write :data:`SAIL_ARCHIVE`: the pysail ``version`` wheel's files as an xz tar (kept when the
    manifest says it holds that version)."""
    archive = folder / SAIL_ARCHIVE
    manifest = folder / MANIFEST
    if (
        archive.exists()
        and manifest.exists()
        and f"pysail=={version}" in json.loads(manifest.read_text()).get("pins", [])
    ):
        return
    with tempfile.TemporaryDirectory() as scratch:
        _pip("download", "-q", *_binary_flags(), "-d", scratch, f"pysail=={version}")
        (wheel,) = Path(scratch).glob("pysail-*.whl")
        files = Path(scratch) / "files"
        zipfile.ZipFile(wheel).extractall(files)
        partial = archive.with_suffix(".part")
        with tarfile.open(partial, "w:xz", preset=9) as tar:
            for path in sorted(files.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(files)), recursive=False)
        partial.replace(archive)


def build_own(folder: Path, repo: Path = REPO) -> Path:
    """Build this package's wheel from the working tree into ``folder`` (replacing an older one)."""
    for old in folder.glob("laion_spark-*.whl"):
        old.unlink()
    shutil.rmtree(repo / "build", ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(folder), "."],
        check=True,
        cwd=repo,
    )
    shutil.rmtree(repo / "build", ignore_errors=True)
    (wheel,) = folder.glob("laion_spark-*.whl")
    return wheel


def write_manifest(folder: Path, wanted: dict[str, str], repo: Path = REPO) -> dict[str, object]:
    """Write and return :data:`MANIFEST`: build time, commit, uncommitted tracked changes, pins, sizes."""
    git = ["git", "-C", str(repo)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    changes = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    manifest: dict[str, object] = {
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "uncommitted_changes": len(changes),
        "pins": [f"{name}=={version}" for name, version in wanted.items()],
        "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.name != MANIFEST},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Fill the folder, print its size beside the working tree's; 1 when over the limit, 2 on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=".gpu-wheels", help="the carried folder (default .gpu-wheels)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    folder = folder if folder.is_absolute() else REPO / folder
    if folder.exists() and not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    try:
        wanted = pins()
    except importlib.metadata.PackageNotFoundError as err:
        print(f"error: this venv lacks {err}: run make venv first", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    stray = [p.name for p in folder.iterdir() if p.name not in (MANIFEST, SAIL_ARCHIVE) and p.suffix != ".whl"]
    if stray:
        print(
            f"error: {folder} holds files that are neither wheels nor {SAIL_ARCHIVE}: {', '.join(stray)}",
            file=sys.stderr,
        )
        return 2
    for path in stale_wheels(folder, wanted):
        path.unlink()
    fetch_wheels(folder, wanted)
    build_client(folder, wanted["pyspark-client"])
    pack_sail(folder, wanted["pysail"])
    build_own(folder)
    write_manifest(folder, wanted)
    carried, tree = folder_bytes(folder), tree_bytes(REPO)
    mib = 1024 * 1024
    print(
        f"carried {folder.name}/: {carried / mib:.1f} MiB; working tree {tree / mib:.1f} MiB; "
        f"together {(carried + tree) / mib:.1f} of {CARRY_LIMIT // mib} MiB"
    )
    if carried + tree >= CARRY_LIMIT:
        print(
            f"error: the working tree and {folder.name}/ come to {carried + tree} bytes, over what one device call carries",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Headless Chromium for the page tests: Debian's chromium, installed by .ci/run.

Outside CI a missing browser skips the test with the reason; under ``CI=true`` it fails it, so CI can never
pass with the browser tests silently skipped.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("LAION_SPARK_CHROMIUM", "/usr/bin/chromium"))


def require_chromium() -> Path:
    """The browser's path; skips (or, under CI=true, fails) the calling test when it is not installed."""
    if not CHROMIUM.exists():
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}: CI must run the browser tests")
        pytest.skip(reason)
    return CHROMIUM


def chromium_args(profile: Path, width: int = 1280, height: int = 2000) -> list[str]:
    """The headless flags of this machine's closed network (no background connections), a fresh profile."""
    return [
        str(require_chromium()),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ]


def console_errors(url: str, profile: Path, screenshot: Path) -> list[str]:
    """Load ``url``, save a screenshot, and return the console's errors (uncaught exceptions included)."""
    proc = subprocess.run(
        [*chromium_args(profile), "--enable-logging=stderr", "--v=0", f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [line for line in (proc.stdout + proc.stderr).splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]


def dump_dom(url: str, profile: Path, budget_ms: int | None = None) -> str:
    """The page's DOM after its scripts ran (``budget_ms`` of virtual time for timers, when given)."""
    extra = [f"--virtual-time-budget={budget_ms}"] if budget_ms else []
    return subprocess.run(
        [*chromium_args(profile), *extra, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout

"""Independent, reproducible random streams for each part of a sample."""

from __future__ import annotations

import uuid
import zlib

import numpy as np


def stream(seed: int, *names: str) -> np.random.Generator:
    """A generator for ``seed`` and a purpose path (e.g. ``"laion2B-en", "metadata"``), stable across runs."""
    keys = [zlib.crc32(name.encode("utf-8")) for name in names]
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *keys]))


def seeded_uuid(seed: int, *names: str) -> str:
    """A version-4 UUID string derived from ``seed`` and the purpose path."""
    return str(uuid.UUID(bytes=stream(seed, "uuid", *names).bytes(16), version=4))

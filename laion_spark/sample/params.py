"""Sample-generator parameters shared by the CLI and the generator (no numpy or pyarrow imported)."""

from __future__ import annotations

from ..errors import InputError

#: Fewest metadata rows per collection a sample may have.
MIN_ROWS = 100
#: Embedding shards per collection by default.
DEFAULT_SHARDS = 4


class SampleError(InputError):
    """The sample cannot be generated as asked (a count out of range, an unusable head, a folder in the way)."""

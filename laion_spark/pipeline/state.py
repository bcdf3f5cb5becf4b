"""What the pipeline remembers between runs: which stage completed, for which inputs and parameters.

A stage is *complete* when the lake's ``pipeline_stages`` table holds a record
for it with the same fingerprint (a digest of its parameters and of what its
inputs are now) and its outputs are still what that run left. Identities are
cheap and read no data: a Delta table's latest commit version, a file's size
and modification time, a folder's files. They work through ``pyarrow.fs``, so
a lake on ``s3://`` or ``gs://`` resumes the same way as a local one.
"""

from __future__ import annotations

import glob
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
from pyspark.sql import functions as F

from ..lake.layout import STAGES_TABLE, is_local, lake_table
from ..lake.tables import delta_version, read_table, table_exists, write_table

if TYPE_CHECKING:
    from ..engine.session import LakeSession

#: Columns of ``pipeline_stages``: one row per completed stage run.
STAGES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("stage", pa.string()),
        ("fingerprint", pa.string()),
        ("outputs", pa.string()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)
_MISSING = "missing"


def identity(path: str) -> str:
    """What ``path`` is now, as a short string: ``delta:v<N>``, a digest of a file or folder listing, or ``missing``.

    ``path`` may be a glob (``shards/*.tar``, local only), a local path or a URI.
    """
    if is_local(path) and glob.has_magic(path):
        files = sorted(glob.glob(path))
        return _digest([(f, *_stat(f)) for f in files]) if files else _MISSING
    fs, where = pafs.FileSystem.from_uri(path) if not is_local(path) else (pafs.LocalFileSystem(), path)
    info = fs.get_file_info(where)
    if info.type == pafs.FileType.NotFound:
        return _MISSING
    if info.type == pafs.FileType.File:
        return _digest([(info.size, info.mtime_ns)])
    version = delta_version(path)
    if version is not None:
        return f"delta:v{version}"
    listing = fs.get_file_info(pafs.FileSelector(where, recursive=True))
    return _digest(sorted((f.path, f.size, f.mtime_ns) for f in listing if f.type == pafs.FileType.File))


def fingerprint(stage: str, params: object, inputs: Iterable[str]) -> str:
    """Digest of a stage's name, parameters (JSON-able) and the identity of each input."""
    return _digest([stage, params, [(path, identity(path)) for path in sorted(set(inputs))]])


def output_identities(outputs: Iterable[str]) -> dict[str, str]:
    """``{path: identity}`` of a stage's outputs."""
    return {path: identity(path) for path in sorted(set(outputs))}


@dataclass
class StageRecords:
    """The latest completed run of each stage, read from ``<lake>/pipeline_stages``."""

    lake: LakeSession
    lake_dir: str
    latest: dict[str, tuple[str, dict[str, str]]]
    run_id: str

    @classmethod
    def load(cls, lake: LakeSession, lake_dir: str) -> StageRecords:
        """The records of the lake (none for a new lake); this run gets a new ``run_id``."""
        path = lake_table(lake_dir, STAGES_TABLE)
        latest: dict[str, tuple[str, dict[str, str]]] = {}
        if table_exists(lake, path):
            rows = read_table(lake, path).orderBy(F.col("finished_at")).collect()
            for row in rows:
                latest[row["stage"]] = (row["fingerprint"], json.loads(row["outputs"]))
        return cls(lake, lake_dir, latest, uuid.uuid4().hex[:12])

    def complete(self, stage: str, print_: str, outputs: Iterable[str]) -> bool:
        """Whether ``stage`` completed with fingerprint ``print_`` and its outputs are as that run left them."""
        recorded = self.latest.get(stage)
        return recorded is not None and recorded[0] == print_ and recorded[1] == output_identities(outputs)

    def record(self, stage: str, print_: str, outputs: Iterable[str]) -> None:
        """Append the completion of ``stage`` (its fingerprint and its outputs' identities now)."""
        produced = output_identities(outputs)
        row = {
            "run_id": [self.run_id],
            "stage": [stage],
            "fingerprint": [print_],
            "outputs": [json.dumps(produced, sort_keys=True)],
            "finished_at": [datetime.now(UTC)],
        }
        frame = self.lake.spark.createDataFrame(pa.table(row, schema=STAGES_SCHEMA).to_pandas())
        write_table(self.lake, frame, lake_table(self.lake_dir, STAGES_TABLE), mode="append")
        self.latest[stage] = (print_, produced)


def _stat(path: str) -> tuple[int, int]:
    info = pafs.LocalFileSystem().get_file_info(path)
    return info.size or 0, info.mtime_ns or 0


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=_plain).encode()).hexdigest()[:16]


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    return str(value)

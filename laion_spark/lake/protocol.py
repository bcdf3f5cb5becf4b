"""A Delta table's protocol (reader/writer versions and table features), read from its log, and the refusal of a
table whose features the running engine cannot write.

Both engines of this project write every lake table with protocol ``(1, 2)`` and no table features
(``tests/lake/test_two_engines.py`` pins it); a table from elsewhere (a Databricks job, delta-rs, a user's
``ALTER TABLE``) may need more. :func:`check_writable` compares what the table needs with the features the
session's engine implements (:mod:`laion_spark.engine.features`, given to each session by the factory) and
raises :class:`TableFeatureError`, one line naming the table, the features and the engine, before anything is
written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..engine.features import LEGACY_WRITER_FEATURES
from ..errors import InputError
from .layout import is_local, table_path

if TYPE_CHECKING:
    from ..engine.session import LakeSession


class TableFeatureError(InputError):
    """The table needs a Delta table feature that the running engine cannot write."""


COMMIT = re.compile(r"^(\d{20})\.json$")
CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(\.\d+\.\d+|\.[0-9a-f-]{36})?\.(parquet|json)$")


@dataclass(frozen=True)
class Protocol:
    """A Delta protocol action: ``minReaderVersion``, ``minWriterVersion`` and the listed features."""

    min_reader: int
    min_writer: int
    reader_features: frozenset[str] = field(default_factory=frozenset)
    writer_features: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, action: dict) -> Protocol:
        """From the JSON ``protocol`` action of a commit or a checkpoint row."""
        return cls(
            int(action["minReaderVersion"]),
            int(action["minWriterVersion"]),
            frozenset(action.get("readerFeatures") or ()),
            frozenset(action.get("writerFeatures") or ()),
        )

    def writer_needs(self) -> frozenset[str]:
        """Every feature a writer must implement: the listed ones from version 7, the implied ones below it."""
        if self.min_writer >= 7:
            return self.writer_features
        return LEGACY_WRITER_FEATURES.get(self.min_writer, frozenset({f"writerVersion{self.min_writer}"}))

    def describe(self) -> str:
        """``(1, 2)`` or ``(3, 7) reader [deletionVectors] writer [appendOnly, deletionVectors, invariants]``."""
        text = f"({self.min_reader}, {self.min_writer})"
        if self.reader_features:
            text += f" reader [{', '.join(sorted(self.reader_features))}]"
        if self.writer_features:
            text += f" writer [{', '.join(sorted(self.writer_features))}]"
        return text


def read_protocol(path: str | Path) -> Protocol | None:
    """The protocol in force at the latest version of the Delta table at ``path`` (a local path or a URI);
    ``None`` when there is no Delta log there.

    The newest commit that carries a protocol action wins; when none after the latest checkpoint does, the
    checkpoint's protocol row. Reads the log listing, those commits and one checkpoint column only.
    """
    text = table_path(path)
    fs, where = (pafs.LocalFileSystem(), text) if is_local(text) else pafs.FileSystem.from_uri(text)
    log = f"{where.rstrip('/')}/_delta_log"
    listing = fs.get_file_info(pafs.FileSelector(log, allow_not_found=True))
    commits = sorted(((int(m[1]), f.path) for f in listing if (m := COMMIT.match(f.base_name))), reverse=True)
    checkpoints = sorted(((int(m[1]), f.path) for f in listing if (m := CHECKPOINT.match(f.base_name))), reverse=True)
    since = checkpoints[0][0] if checkpoints else -1
    for version, file in commits:
        if version <= since:
            break
        with fs.open_input_stream(file) as stream:
            for line in stream.read().decode("utf-8").split("\n"):
                if '"protocol"' in line:
                    action = json.loads(line).get("protocol")
                    if action:
                        return Protocol.of(action)
    if checkpoints:
        version = checkpoints[0][0]
        for _, file in (c for c in checkpoints if c[0] == version):
            found = _checkpoint_protocol(fs, file)
            if found:
                return found
    return None


def _checkpoint_protocol(fs: pafs.FileSystem, file: str) -> Protocol | None:
    if file.endswith(".json"):  # a V2 checkpoint in JSON
        with fs.open_input_stream(file) as stream:
            for line in stream.read().decode("utf-8").split("\n"):
                if '"protocol"' in line and (action := json.loads(line).get("protocol")):
                    return Protocol.of(action)
        return None
    with fs.open_input_file(file) as handle:
        rows = pq.read_table(handle, columns=["protocol"]).column("protocol").to_pylist()
    return next((Protocol.of(row) for row in rows if row), None)


def check_writable(lake: LakeSession, path: str | Path) -> None:
    """Refuse, before anything is written, a Delta table that needs a writer feature the session's engine lacks.

    Nothing is checked for a table that does not exist yet, for a Parquet lake, or for an engine whose features
    are not known here (``remote``, Databricks): those engines refuse on their own, and :func:`write_table`
    turns that refusal into the same error. Raises :class:`TableFeatureError`.
    """
    features = lake.delta_writer_features
    if lake.table_format != "delta" or features is None:
        return
    protocol = read_protocol(path)
    if protocol is None:
        return
    missing = sorted(protocol.writer_needs() - features)
    if missing:
        raise feature_error(table_path(path), missing, lake.engine, protocol)


def feature_error(path: str, missing: list[str], engine: str, protocol: Protocol | None = None) -> TableFeatureError:
    """The one-line refusal of ``path`` for the ``missing`` writer features on ``engine``."""
    needs = f" (protocol {protocol.describe()})" if protocol else ""
    return TableFeatureError(
        f"{path}: the Delta table needs the table feature{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        f"{needs}, which engine {engine} cannot write; nothing was written: write it with an engine that "
        "implements it, or drop the feature from the table (ALTER TABLE ... DROP FEATURE)"
    )

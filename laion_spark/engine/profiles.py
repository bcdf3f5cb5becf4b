"""Spark profiles: spark-defaults style files in ``conf/``, merged for an engine.

The profiles (and ``pipeline.yaml``) ship inside the wheel as package data
(``laion_spark/conf``, copied from the repository's ``conf/`` at build time),
so an installed wheel under spark-submit or Databricks has its defaults; in a
checkout they are read from the repository's ``conf/``, the one source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ..errors import InputError

#: The repository's ``conf/`` (a checkout or an editable install).
_REPO_CONF = Path(__file__).resolve().parents[2] / "conf"


class EngineError(InputError):
    """An engine was asked for with a bad name, profile, setting or address, or could not be started."""


def conf_dir() -> Traversable:
    """Folder of the default profiles and ``pipeline.yaml``.

    ``$LAION_SPARK_CONF_DIR`` when set; else the wheel's packaged ``laion_spark/conf``
    (also inside a ``--py-files`` zip); else the repository's ``conf/``.
    """
    override = os.environ.get("LAION_SPARK_CONF_DIR")
    if override:
        return Path(override)
    packaged = resources.files("laion_spark").joinpath("conf")
    if packaged.is_dir():
        return packaged
    return _REPO_CONF


def _profile_source(name_or_path: str | Path) -> Traversable:
    """A bare name (``local``) is ``<conf_dir>/<name>.conf``; anything else is a path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists() and os.sep not in str(name_or_path):
        return conf_dir().joinpath(f"{name_or_path}.conf")
    return path


def read_profile(name_or_path: str | Path) -> dict[str, str]:
    """Parse a spark-defaults style profile (``key value`` lines, ``#`` comments).

    Takes a bare name (looked up in :func:`conf_dir`) or a path; returns the
    settings in file order. Raises :class:`EngineError` naming the file (and
    line) when it is missing, unreadable or malformed.
    """
    source = _profile_source(name_or_path)
    if not source.is_file():
        raise EngineError(f"Spark profile not found: {source}")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise EngineError(f"Spark profile {source}: not readable as text ({err})") from None
    settings: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise EngineError(f"{source}:{lineno}: expected 'key value', got {raw.strip()!r}")
        settings[parts[0]] = parts[1].strip()
    return settings


def resolve_conf(
    engine: str, profiles: Sequence[str | Path] | None, overrides: Mapping[str, str] | None
) -> dict[str, str]:
    """Merge the base and engine profiles (where :func:`conf_dir` has them), extra profiles and overrides.

    Later sources win: ``spark-defaults``, ``<engine>``, each of ``profiles``,
    then ``overrides``. Extra profiles must exist; the base ones are optional.
    """
    names: list[str | Path] = [n for n in ("spark-defaults", engine) if conf_dir().joinpath(f"{n}.conf").is_file()]
    names.extend(profiles or ())
    merged: dict[str, str] = {}
    for name in names:
        merged.update(read_profile(name))
    merged.update(overrides or {})
    return merged

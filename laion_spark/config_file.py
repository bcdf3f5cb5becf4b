"""Config files: YAML read safely, and strict checks of the parsed tree, each error naming the key path
(``pipeline.stages.kv.files[1].table``)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from .errors import InputError, first_line

#: The largest config file read (a pipeline config is a few kilobytes).
MAX_CONFIG_BYTES = 1 << 20


class PipelineConfigError(InputError):
    """The pipeline configuration is malformed; the message names the key."""


def mapping(data: object, where: str, *, required: set[str] = frozenset(), optional: set[str]) -> Mapping:
    """``data`` as a mapping whose keys are all ``required`` or ``optional``; ``where`` names it in errors."""
    if not isinstance(data, Mapping):
        raise PipelineConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    allowed = required | optional
    for key in data:
        if key not in allowed:
            prefix = "" if where == "config" else f"{where}."
            raise PipelineConfigError(f"{prefix}{key}: unknown key; allowed: {', '.join(sorted(allowed))}")
    for key in sorted(required):
        if key not in data:
            prefix = "" if where == "config" else f"{where}."
            raise PipelineConfigError(f"{prefix}{key}: missing required key")
    return data


def number(value: object, where: str) -> float:
    """An int or float (not a bool) as float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PipelineConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)


def strings(value: object, where: str) -> tuple[str, ...]:
    """A list of distinct strings as a tuple."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PipelineConfigError(f"{where}: expected a list of strings, got {value!r}")
    if len(set(value)) != len(value):
        raise PipelineConfigError(f"{where}: duplicate entries in {value!r}")
    return tuple(value)


def is_int(value: object) -> bool:
    """Whether ``value`` is an int (and not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer(value: object, where: str, *, minimum: int | None = None) -> int:
    """An int (not a bool), at least ``minimum`` when given."""
    if not is_int(value) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise PipelineConfigError(f"{where}: expected an integer{bound}, got {value!r}")
    return int(value)


def text(value: object, where: str, *, choices: tuple[str, ...] | None = None) -> str:
    """A non-empty string, one of ``choices`` when given."""
    if not isinstance(value, str) or not value:
        raise PipelineConfigError(f"{where}: expected a non-empty string, got {value!r}")
    if choices is not None and value not in choices:
        raise PipelineConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def flag(value: object, where: str) -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        raise PipelineConfigError(f"{where}: expected true or false, got {value!r}")
    return value


class _PlainLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a config never needs them, and aliases can expand a small file
    into an enormous tree ("billion laughs")."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise PipelineConfigError(f"line {mark.line + 1}: YAML aliases (*name) are not allowed in a config")
        return super().compose_node(parent, index)


def read_yaml(source: Path | Traversable) -> object:
    """The parsed YAML of ``source``; :class:`PipelineConfigError` naming the file (and line) for anything else."""
    try:
        raw = source.read_bytes()
    except OSError as err:
        raise PipelineConfigError(f"{source}: not readable ({err})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise PipelineConfigError(f"{source}: {len(raw):,} bytes, more than a config may have ({MAX_CONFIG_BYTES:,})")
    try:
        return yaml.load(raw.decode("utf-8"), Loader=_PlainLoader)  # a SafeLoader subclass
    except UnicodeDecodeError as err:
        raise PipelineConfigError(f"{source}: not UTF-8 text ({err})") from None
    except PipelineConfigError as err:
        raise PipelineConfigError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or first_line(err)
        raise PipelineConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise PipelineConfigError(f"{source}: nested too deeply to be a config") from None

"""Strict checks of a parsed YAML tree: each error names the key path (``stages.kv.files[1].table``)."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InputError


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

"""The one exception hierarchy of laion-spark, and what each kind means to a user.

Every error the suite raises on purpose derives from :class:`LaionSparkError`:

* :class:`InputError` -- bad input a user gave: a path, a file's contents, a
  column, a row, a config key, an option value, an engine name. The command
  line prints one line naming the culprit and exits with status 2, before any
  lake table is changed.
* :class:`InvariantError` -- a broken invariant inside a job (rows not
  conserved, a shard that changed while it was read). The command line prints
  the message and the run summary and exits with status 1.

Stage packages subclass these (``HeadFormatError``, ``KVFormatError`` ...), so
library users can catch one stage's errors or all of them. Some also derive
from the built-in they used to be (``FileNotFoundError``, ``ValueError``) so
that existing ``except`` clauses keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lake.runs import RunSummary

__all__ = ["EXIT_INPUT", "EXIT_INVARIANT", "InputError", "InvariantError", "LaionSparkError", "first_line"]

#: Exit status of a command refused for bad input.
EXIT_INPUT = 2
#: Exit status of a command whose job broke an invariant.
EXIT_INVARIANT = 1


class LaionSparkError(Exception):
    """Base of every error laion-spark raises on purpose."""

    exit_code = EXIT_INVARIANT


class InputError(LaionSparkError, ValueError):
    """Bad input a user gave; the message names the file, column, row, key or option."""

    exit_code = EXIT_INPUT


class InvariantError(LaionSparkError, RuntimeError):
    """A job broke one of its invariants; ``summary`` is the run summary at that point, when there is one."""

    exit_code = EXIT_INVARIANT

    def __init__(self, message: str, summary: RunSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (engines raise errors pages long), or its type."""
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)

"""Errors of the UMAP stage (light: the command line imports them)."""

from __future__ import annotations

from ..errors import InputError, LaionSparkError


class UmapError(InputError):
    """A UMAP option or input table the job cannot use (named in the message)."""


class BackendUnavailableError(LaionSparkError):
    """The UMAP backend asked for (or every backend) cannot be imported here."""

"""What every ``jobs/*.py`` spark-submit entry point does."""

from __future__ import annotations

import os
import sys


def run_job(command: str, argv: list[str] | None = None) -> None:
    """Run ``laion-spark COMMAND ARGV`` on the session of the surrounding job.

    Without ``--engine`` the command runs with ``--engine active``: the session
    spark-submit (or a Databricks job) provides, created here when the script
    was started by spark-submit before any session existed.

    The entry's own folder leaves ``sys.path`` first: Python puts it there,
    and ``jobs/umap.py`` would otherwise stand in for the ``umap`` package.
    """
    forget_entry_folder()
    from pyspark.sql import SparkSession

    from .app import app, quick_exit

    quick_exit()
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("--engine", "-e") or a.startswith("--engine=") for a in args):
        if "--help" not in args:
            SparkSession.builder.appName(f"laion-spark {command}").getOrCreate()
        args = ["--engine", "active", *args]
    app([command, *args], prog_name=f"{command.replace('-', '_')}.py")


def forget_entry_folder() -> None:
    """Undo Python's putting the running script's folder first on ``sys.path``.

    Only that one entry goes, and only when ``__main__`` is a script file and
    ``sys.path[0]`` is its folder: called from a notebook, ``python -c`` or a
    test, ``sys.path`` stays as it is.
    """
    script = getattr(sys.modules["__main__"], "__file__", None)
    if script and sys.path and os.path.realpath(sys.path[0] or os.curdir) == os.path.dirname(os.path.realpath(script)):
        del sys.path[0]

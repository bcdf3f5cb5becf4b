"""What every ``jobs/*.py`` spark-submit entry point does."""

from __future__ import annotations

import sys


def run_job(command: str, argv: list[str] | None = None) -> None:
    """Run ``laion-spark COMMAND ARGV`` on the session of the surrounding job.

    Without ``--engine`` the command runs with ``--engine active``: the session
    spark-submit (or a Databricks job) provides, created here when the script
    was started by spark-submit before any session existed.
    """
    from pyspark.sql import SparkSession

    from .app import app

    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("--engine", "-e") or a.startswith("--engine=") for a in args):
        if "--help" not in args:
            SparkSession.builder.appName(f"laion-spark {command}").getOrCreate()
        args = ["--engine", "active", *args]
    app([command, *args], prog_name=f"{command.replace('-', '_')}.py")

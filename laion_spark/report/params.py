"""The report stage's declaration (nothing heavy imported)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..lake.layout import lake_tables
from ..stage import FROM_CONFIG, FROM_LAKE, Stage, param
from ..subsets.params import CONFIG_HELP, SubsetsConfig, load_subsets_config

#: The report's page, in its folder.
PAGE = "index.html"


@dataclass(frozen=True, kw_only=True)
class Report(Stage):
    """Write report/index.html (self-contained) and its PNG charts from the lake's tables."""

    command: ClassVar[str] = "report"
    job: ClassVar[str] = "laion_spark.report.build:build_report"

    lake: str = param(help="Lake folder holding the tables (each optional).", path=True, pipeline=FROM_LAKE)
    out: str | None = param(None, help="Report folder (default: report/ beside the lake).", path=True)
    config: SubsetsConfig | None = param(
        None, help=CONFIG_HELP, parse=load_subsets_config, pipeline=FROM_CONFIG, show="the packaged pipeline.yaml"
    )
    log_scale: bool = param(False, help="Log y axis on the distribution charts.")
    samples: int = param(3, help="Sample captions per score bucket.", minimum=0)

    @property
    def folder(self) -> Path:
        """The report's folder: ``out``, else ``report/`` beside the lake."""
        return Path(self.out) if self.out is not None else Path(self.lake).expanduser().resolve().parent / "report"

    def summarize(self, result: object) -> str:
        """Where the page is."""
        return f"report written to {result}"

    def inputs(self) -> list[str]:
        """Every table of the lake (each read when it is there) but the ones that record runs."""
        return lake_tables(self.lake)

    def outputs(self) -> list[str]:
        """The report's folder."""
        return [str(self.folder)]

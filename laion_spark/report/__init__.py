"""The run report: ``index.html`` with the score distributions, subset funnel, sample captions and runs."""

from .build import build_report

__all__ = ["build_report"]

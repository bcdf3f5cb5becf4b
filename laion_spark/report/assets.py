"""The pages' front-end files, shipped as package data beside this module and read when a page is written.

``map.html`` (the caption map's page, with ``str.format`` fields), ``map.css`` and ``map.js`` (its style and
code, linted by ``make lint-js``) and ``report.css`` (the report page's style). Each page inlines them, so
it stays one self-contained file. ``pyproject.toml``'s package-data puts them in the wheel (and so in
``make dist``'s zip, which ``importlib.resources`` reads in place).
"""

from __future__ import annotations

from importlib import resources


def asset(name: str) -> str:
    """The text of the front-end file ``name`` (``"map.js"`` ...) of :mod:`laion_spark.report`."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")

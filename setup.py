"""Build hook: ship the repository's ``conf/`` inside the package as ``laion_spark/conf``.

``conf/`` (Spark profiles and ``pipeline.yaml``) stays the one source in the
repository; every built wheel (and ``make dist``'s zip) carries a copy, so an
installed wheel under spark-submit or Databricks has its defaults
(:func:`laion_spark.engine.conf_dir`).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONF = Path(__file__).parent / "conf"


class BuildPyWithConf(build_py):
    """``build_py`` that also copies ``conf/*`` to ``<build>/laion_spark/conf/``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads conf/ in place
            return
        target = Path(self.build_lib) / "laion_spark" / "conf"
        shutil.copytree(CONF, target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithConf})

"""A lost commit race is the same ``WriteConflictError`` naming the table on both engines, and leaves the rows once.

Two threads replace one partition at once until one loses (``tests/reliability/race.py``): Sail says "Failed to
commit transaction", delta-spark raises ``ConcurrentAppendException`` / ``ConcurrentDeleteReadException`` ...
behind a Py4J wrapper whose first line is ``An error occurred while calling o123.save``; both become one line
that names the table and the engine's own exception.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.compute as pc
import pytest
from conftest import REPO, classic_env
from deltalake import DeltaTable
from race import race

CONFLICT = "another writer changed the table while this job wrote it"


def check(lost: list[str], path) -> None:
    assert lost, "no writer lost a race in any round"
    for line in lost:
        assert line.startswith(f"{path}: {CONFLICT} (") and "\n" not in line, line
    table = DeltaTable(str(path)).to_pyarrow_table()
    assert table.num_rows == 51 and pc.sum(pc.equal(table["c"], "a")).as_py() == 50  # the partition once


@pytest.mark.slow
def test_a_lost_race_on_sail_names_the_table(sail, tmp_path) -> None:
    lost = race(sail, tmp_path / "t")
    check(lost, tmp_path / "t")
    assert all("Failed to commit transaction" in line for line in lost)


@pytest.mark.classic
def test_a_lost_race_on_delta_spark_names_the_table_and_its_exception(tmp_path) -> None:
    """Guard: _conflict_line picks the line naming delta-spark's exception (first_line would give Py4J's
    'An error occurred while calling o123.save')."""
    out = tmp_path / "lost.json"
    command = [sys.executable, str(REPO / "tests" / "reliability" / "race.py"), str(tmp_path / "t"), str(out)]
    proc = subprocess.run(
        [*command, "--engine", "local"], capture_output=True, text=True, env=classic_env(), timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lost = json.loads(out.read_text())
    check(lost, tmp_path / "t")
    assert all("Concurrent" in line and "o1" not in line.split("(")[1][:12] for line in lost), lost
    print(lost[0])

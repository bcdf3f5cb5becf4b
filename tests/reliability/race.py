"""Two writers racing on one partition of one table, from two threads of one process, on any engine.

``race(lake, path, pairs)`` writes the partition ``c = 'a'`` of ``path`` with ``write_table``'s
``replace_partition`` from two threads at once, ``pairs`` times (until a race is lost, at least once), and returns
the one-line errors the losers got. As a script (``python race.py PATH OUT.json --engine local``) it does the
same in a process of its own, as classic Spark needs.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path


def race(lake, path: Path, pairs: int = 8) -> list[str]:
    from laion_spark.lake.tables import WriteConflictError, write_table

    rows = lake.spark.createDataFrame([(i, "a") for i in range(50)] + [(99, "b")], "id long, c string")
    write_table(lake, rows, path, partition_by=["c"], mode="overwrite")
    part = rows.where("c = 'a'")
    lost: list[str] = []
    for _ in range(pairs):
        barrier = threading.Barrier(2)

        def write(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                write_table(lake, part, path, partition_by=["c"], replace_partition={"c": "a"})
            except WriteConflictError as err:
                lost.append(str(err))

        threads = [threading.Thread(target=write) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if lost:
            break
    return lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--engine", default="sail")
    args = parser.parse_args()
    from laion_spark.engine import open_session

    with open_session(args.engine) as lake:
        lost = race(lake, args.path)
    args.out.write_text(json.dumps(lost))


if __name__ == "__main__":
    main()

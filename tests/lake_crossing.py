"""Continue a lake with another engine: read, append to, partially replace and time-travel every table.

``cross(lake, lake_dir)`` runs on any engine's session; as a script (``python tests/lake_crossing.py LAKE OUT.json
--engine local``) it does the same in a process of its own, as classic Spark needs. For every Delta table of the
lake it records the order-independent digest (``lake_checks.digest``) of what the engine read:

* ``start``: the table as found (the version the other engine left);
* then it appends every row again (a blind append: each row twice), and for ``joined`` and ``aesthetic_tags``
  replaces a part the way the jobs do (``joined``: one collection's partition, ``replaceWhere collection = ...``;
  ``aesthetic_tags``: shard 0 of one head and collection, ``replaceWhere ... AND (shard IN (0))``) with the rows
  it had at the start (that part once again);
* ``latest`` and ``previous``: the newest version and, by time travel, the one before it; ``versions``: the
  versions it read. ``--read-only`` records ``latest`` and ``previous`` without writing. An empty table (a
  subset no row reaches) is only read: appending nothing commits nothing on delta-spark.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow as pa
from lake_checks import digest

#: The parts the jobs replace, per table: ``(partition_by, replace_partition, replace_rows)`` from a row of it.
PARTS = {
    "joined": lambda row: (["collection"], {"collection": row["collection"]}, None),
    "aesthetic_tags": lambda row: (
        ["head", "collection"],
        {"head": row["head"], "collection": row["collection"]},
        f"shard IN ({row['shard']})",
    ),
}


#: The key of the record that describes the engine rather than a table.
ENGINE_KEY = "_engine"


def canonical(table: pa.Table) -> pa.Table:
    """Timestamps as microseconds since the epoch (readers differ in the zone object they attach, not the instant)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            column = table.column(i).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            table = table.set_column(i, field.name, column)
    return table


def table_digest(table: pa.Table) -> list:
    return list(digest(canonical(table)))


def part_filter(name: str, row: dict) -> str:  # the part as SQL, for the engine
    """SQL predicate of the part :data:`PARTS` replaces for ``row``."""
    _, partition, rows = PARTS[name](row)
    clauses = [f"`{k}` = '{v}'" for k, v in partition.items()]
    return " AND ".join([*clauses, *([rows] if rows else [])])


def tables(lake_dir: Path) -> list[Path]:
    return sorted(p for p in lake_dir.iterdir() if (p / "_delta_log").is_dir())


def cross(lake, lake_dir: Path, *, read_only: bool = False) -> dict[str, dict]:
    from laion_spark.lake.tables import delta_version, read_table, write_table

    record: dict[str, dict] = {}
    for path in tables(lake_dir):
        name, start = path.name, delta_version(path)
        entry: dict = {}
        if not read_only:
            original = read_table(lake, path, version=start)
            entry["start"] = table_digest(original.toArrow())
            if entry["start"][0] == 0:  # an empty subset: an append of nothing commits nothing on delta-spark
                entry["empty"] = True
            else:
                write_table(lake, original, path, mode="append")
            if name in PARTS and not entry.get("empty"):
                row = original.where("shard = 0" if name == "aesthetic_tags" else "true").first().asDict()
                partition_by, partition, rows = PARTS[name](row)
                part = original.where(part_filter(name, row))
                write_table(lake, part, path, partition_by=partition_by, replace_partition=partition, replace_rows=rows)
                entry["part"] = {**partition, **({"shard": row["shard"]} if rows else {})}
        latest = delta_version(path)
        entry["versions"] = [latest - 1, latest]
        entry["latest"] = table_digest(read_table(lake, path).toArrow())
        if latest > 0:
            try:
                entry["previous"] = table_digest(read_table(lake, path, version=latest - 1).toArrow())
            except Exception as err:
                if "Missing commit file" not in str(err):
                    raise
                entry["previous_error"] = str(err).splitlines()[0]
        if lake.engine == "local":  # delta-spark's own reading of the log, commit metrics included
            history = lake.spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version").collect()
            entry["history"] = sorted(int(r["version"]) for r in history)
        record[name] = entry
    if lake.engine == "local":  # the writer features delta-spark's jar registers (engine/features.py lists them)
        features = lake.spark._jvm.org.apache.spark.sql.delta.TableFeature.allSupportedFeaturesMap().values()
        each, names = features.iterator(), []
        while each.hasNext():
            names.append(str(each.next().name()))
        record[ENGINE_KEY] = {"writer_features": sorted(names)}
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--engine", default="sail")
    parser.add_argument("--read-only", action="store_true")
    args = parser.parse_args(argv)
    from laion_spark.engine import open_session

    with open_session(args.engine) as lake:
        record = cross(lake, args.lake, read_only=args.read_only)
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    sys.exit(main())

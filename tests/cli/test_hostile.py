"""Hostile input, table-driven: statements that would write through ``sql``, paths no engine takes as given, names
from a config that would lead a write astray, and lake paths with odd characters that must simply work.

Each case runs the real command line in this process on the shared Sail session (as
``tests/cli/test_bad_input.py``), from inside the cases' folder (so ``./spark-warehouse`` or a relative path would
land there). A refused case checks: exit status 2, one line ``error: ...`` naming the culprit, no traceback, the
lake's Delta versions and every byte of it unchanged, and no file written or removed anywhere under the cases'
folder (which holds the lake, the configs and every output path the cases name). A case that must work checks
that the table lands in exactly the folder named (no stray percent-encoded folder, nothing in the parent) and
that ``sql`` reads it back there.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_bad_input import EMB, HEAD, META, World, snapshot, world  # noqa: F401 - ``world``: the module's lake
from typer.testing import CliRunner

from laion_spark.cli import app
from laion_spark.lake.tables import delta_version

TAGS = "{sample}/tags/laion2B-en"


@dataclass(frozen=True)
class Case:
    """A command line (``{lake}``, ``{root}``, ``{sample}`` filled in) and what its one error line must name."""

    id: str
    argv: tuple[str, ...]
    culprit: str


def sql(query: str) -> tuple[str, ...]:
    return ("sql", query, "--lake", "{lake}")


#: ``sql``: every statement that is not one read-only query over the lake's tables, by kind.
SQL_CASES = [
    Case("sql-delete", sql("DELETE FROM delta.`{lake}/joined` WHERE true"), "DELETE is not allowed"),
    Case("sql-delete-view", sql("DELETE FROM joined"), "DELETE is not allowed"),
    Case("sql-update", sql("UPDATE delta.`{lake}/joined` SET aesthetic = 0"), "UPDATE is not allowed"),
    Case(
        "sql-merge",
        sql("MERGE INTO delta.`{lake}/joined` t USING joined s ON t.hash = s.hash WHEN MATCHED THEN DELETE"),
        "MERGE INTO is not allowed",
    ),
    Case("sql-insert", sql("INSERT INTO delta.`{lake}/joined` SELECT * FROM joined"), "INSERT INTO is not allowed"),
    Case(
        "sql-insert-overwrite-directory",
        sql("INSERT OVERWRITE DIRECTORY '{lake}/joined/_delta_log' USING parquet SELECT 1"),
        "INSERT OVERWRITE DIRECTORY is not allowed",
    ),
    Case(
        "sql-create-table-location",
        sql("CREATE TABLE t USING delta LOCATION '{root}/elsewhere' AS SELECT * FROM joined"),
        "CREATE TABLE is not allowed",
    ),
    Case("sql-ctas-warehouse", sql("CREATE TABLE t AS SELECT * FROM joined"), "CREATE TABLE is not allowed"),
    Case(
        "sql-temp-view-over-a-file",
        sql("CREATE OR REPLACE TEMPORARY VIEW v USING text OPTIONS (path '/etc/passwd')"),
        "CREATE OR REPLACE TEMPORARY VIEW is not allowed",
    ),
    Case("sql-drop", sql("DROP TABLE joined"), "DROP TABLE is not allowed"),
    Case("sql-truncate", sql("TRUNCATE TABLE joined"), "TRUNCATE TABLE is not allowed"),
    Case("sql-alter", sql("ALTER TABLE joined ADD COLUMNS (x int)"), "ALTER TABLE is not allowed"),
    Case("sql-vacuum", sql("VACUUM delta.`{lake}/joined` RETAIN 0 HOURS"), "VACUUM"),
    Case("sql-restore", sql("RESTORE TABLE delta.`{lake}/joined` TO VERSION AS OF 0"), "RESTORE TABLE is not allowed"),
    Case("sql-set", sql("SET spark.sql.warehouse.dir={root}"), "SET is not allowed"),
    Case("sql-use", sql("USE default"), "USE is not allowed"),
    Case("sql-cache", sql("CACHE TABLE joined"), "CACHE TABLE is not allowed"),
    Case("sql-add-jar", sql("ADD JAR {root}/x.jar"), "ADD JAR is not allowed"),
    Case(
        "sql-load-data", sql("LOAD DATA LOCAL INPATH '/etc/passwd' INTO TABLE joined"), "LOAD DATA LOCAL INPATH is not"
    ),
    Case("sql-msck", sql("MSCK REPAIR TABLE joined"), "MSCK REPAIR is not allowed"),
    Case(
        "sql-with-insert", sql("WITH x AS (SELECT * FROM joined) INSERT INTO joined SELECT * FROM x"), "INSERT is not"
    ),
    Case("sql-from-insert", sql("FROM joined INSERT INTO t SELECT *"), "INSERT is not allowed"),
    Case("sql-select-into", sql("SELECT * INTO t FROM joined"), "SELECT ... INTO is not allowed"),
    Case("sql-two-statements", sql("SELECT 1; DELETE FROM joined"), "2 statements"),
    Case("sql-explain-delete", sql("EXPLAIN DELETE FROM joined"), "DELETE is not allowed"),
    Case("sql-read-a-local-file", sql("SELECT * FROM text.`/etc/passwd`"), "text.`/etc/passwd` is not a table"),
    Case("sql-read-a-file-uri", sql("SELECT * FROM json.`file:///etc/passwd`"), "is not a table of the lake"),
    Case("sql-table-by-path", sql("SELECT count(*) FROM delta.`{lake}/joined`"), "is not a table of the lake"),
    Case(
        "sql-path-in-a-subquery",
        sql("SELECT * FROM joined WHERE hash IN (SELECT hash FROM parquet.`{lake}/joined`)"),
        "is not a table of the lake",
    ),
    Case("sql-qualified-name", sql("SELECT * FROM default.joined"), "default.joined is not a table"),
    Case(
        "sql-identifier-clause", sql("SELECT * FROM IDENTIFIER('delta.`{lake}/joined`')"), "table function identifier"
    ),
    Case("sql-read-files", sql("SELECT * FROM read_files('/etc/passwd')"), "table function read_files"),
    Case("sql-reflect", sql("SELECT reflect('java.lang.System', 'exit', 0)"), "function reflect calls Java code"),
    Case("sql-java-method", sql("SELECT java_method('java.lang.Thread', 'sleep', 1000L)"), "java_method"),
    Case("sql-describe-a-path", sql("DESCRIBE delta.`{lake}/joined`"), "DESCRIBE takes one table of the lake"),
    Case("sql-show-create", sql("SHOW CREATE TABLE joined"), "SHOW CREATE is not allowed"),
    Case("sql-show-columns-elsewhere", sql("SHOW COLUMNS IN nope"), "'nope' is not a table of the lake"),
    Case("sql-lake-with-a-newline", ("sql", "SELECT 1", "--lake", "{root}/a\nb"), "control character"),
]

#: Paths no engine or OS takes, refused with one line before anything is written.
PATH_CASES = [
    Case("path-lake-with-a-newline", ("stats", "--lake", "{root}/new\nline"), "--lake: '"),
    Case("path-lake-with-a-tab", ("subsets", "--lake", "{root}/a\tb"), "holds a control character ('\\t')"),
    Case("path-name-over-255-bytes", ("stats", "--lake", "{root}/" + "x" * 300), "longer than 255 bytes"),
    Case("path-path-over-4095-bytes", ("stats", "--lake", "{root}" + "/abc" * 1100), "longer than a path may be"),
    Case("path-file-uri-of-another-host", ("stats", "--lake", "file://elsewhere/lake"), "names host 'elsewhere'"),
    Case("path-file-uri-unencoded-query", ("stats", "--lake", "file://{root}/a?b"), "must be percent-encoded"),
    Case(
        "path-lake-is-a-file",
        ("score-embeddings", "--embeddings", EMB, "--head", HEAD, "--lake", "{root}/a_file"),
        "--lake: {root}/a_file is a file",
    ),
    Case(
        "path-lake-under-a-file",
        ("join-tags", "--metadata", META, "--collection", "c", "--lake", "{root}/a_file/lake"),
        "{root}/a_file is a file",
    ),
    Case("path-out-in-proc", ("export-aesthetic-embeddings", "--lake", "{lake}", "--out", "/proc/x"), "cannot write"),
    Case(
        "path-kv-out-in-sys",
        ("build-kv", "--table", "{lake}/aesthetic_tags", "--value-columns", "aesthetic", "--out", "/sys/x.kv"),
        "--out: cannot write in /sys",
    ),
    Case(
        "path-kv-staging-under-a-file",
        (
            "build-kv",
            "--table",
            "{lake}/aesthetic_tags",
            "--value-columns",
            "aesthetic",
            "--out",
            "{root}/a.kv",
            "--staging",
            "{root}/a_file/staging",
        ),
        "{root}/a_file is a file",
    ),
    Case("path-report-out-in-proc", ("report", "--lake", "{lake}", "--out", "/proc/report"), "--out: cannot write"),
    Case(
        "path-report-of-no-lake",
        ("report", "--lake", "{root}/no_lake", "--out", "{root}/report"),
        "--lake {root}/no_lake: does not exist",
    ),
    Case(
        "path-embed-text-out-under-a-file",
        (
            "embed-text",
            "--table",
            "{lake}/joined",
            "--column",
            "TEXT",
            "--model",
            "laion-spark-tiny",
            "--out",
            "{root}/a_file/emb",
        ),
        "{root}/a_file is a file",
    ),
    Case(
        "path-collection-over-128-characters",
        ("join-tags", "--metadata", META, "--collection", "c" * 300, "--lake", "{lake}"),
        "has 300 characters: at most 128",
    ),
    Case(
        "path-score-collection-over-128",
        ("score-embeddings", "--embeddings", EMB, "--head", HEAD, "--lake", "{lake}", "--collection", "c" * 200),
        "at most 128",
    ),
    Case(
        "path-score-collection-with-a-slash",
        ("score-embeddings", "--embeddings", EMB, "--head", HEAD, "--lake", "{lake}", "--collection", "../x"),
        "collection name '../x'",
    ),
]

#: Names from a pipeline config that would lead a write out of the root and the lake, or run what was not asked.
CONFIG_CASES = [
    Case(
        "config-kv-out-climbs-out",
        ("pipeline", "--config", "{root}/kv_climbs.yaml"),
        "pipeline.stages.kv.files[0].out: '../../x.kv' leads to",
    ),
    Case(
        "config-kv-out-absolute-elsewhere",
        ("pipeline", "--config", "{root}/kv_absolute.yaml"),
        "pipeline.stages.kv.files[0].out: '/tmp/laion-spark-astray.kv' leads to /tmp/laion-spark-astray.kv, outside",
    ),
    Case(
        "config-kv-staging-elsewhere",
        ("pipeline", "--config", "{root}/kv_staging.yaml"),
        "pipeline.stages.kv.files[0].staging",
    ),
    Case("config-report-out-elsewhere", ("pipeline", "--config", "{root}/report_out.yaml"), "stages.report.out"),
    Case(
        "config-export-elsewhere",
        ("pipeline", "--config", "{root}/export_out.yaml"),
        "pipeline.stages.aesthetic_embeddings.export",
    ),
    Case(
        "config-subset-name-with-a-newline",
        ("pipeline", "--config", "{root}/subset_newline.yaml"),
        "subsets[0].name: expected lower-case letters",
    ),
    Case(
        "config-umap-subset-with-a-newline",
        ("pipeline", "--config", "{root}/umap_subset_newline.yaml"),
        "pipeline.stages.umap_sample.subset",
    ),
    Case("config-lake-is-a-file", ("pipeline", "--config", "{root}/lake_file.yaml"), "pipeline.lake: "),
    Case("config-lake-with-a-newline", ("pipeline", "--config", "{root}/lake_newline.yaml"), "control character"),
    Case("config-only-a-comma", ("pipeline", "--config", "{root}/kv_ok.yaml", "--only", ","), "--only: name at least"),
    Case("config-only-blanks", ("pipeline", "--config", "{root}/kv_ok.yaml", "--only", " , "), "--only: name at least"),
]

REFUSED = SQL_CASES + PATH_CASES + CONFIG_CASES

#: Lake folder names with characters engines read as URL syntax: each must hold the lake, and nothing else change.
ODD_NAMES = {
    "space": "my lake",
    "hash": "lake#1",
    "percent-20": "p%20q",
    "percent": "100%",
    "question-mark": "what?",
    "non-ascii": "café lake é",
    "brackets": "br[k]",
    "star": "st*r",
    "braces": "b{1,2}",
    "colon": "c:olon",
    "quote": "it's",
    "semicolon": "a;b",
    "backslash": "back\\slash",
    "everything": "all # ? % é [x] *:",
}


def _config(cases: World, name: str, stages: dict, **pipeline: object) -> None:
    """A pipeline config in the cases' folder: root ``{root}/proot`` (the sample beside it), the module's lake."""
    data = {
        "subsets": [{"name": "aesthetics_6plus", "threshold": 6.0}],
        "pipeline": {
            "root": str(cases / "proot"),
            "lake": str(cases.lake),
            "head": str(cases.sample / "heads" / "synthetic-l14.pth"),
            "stages": stages,
            **pipeline,
        },
    }
    (cases / name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _hostile_files(cases: World) -> None:
    """The files the cases point at, written once (before any case snapshots the folder)."""
    if (cases / "a_file").exists():
        return
    (cases / "a_file").write_text("a file, not a folder\n")
    (cases / "proot").mkdir()
    kv = {"table": "aesthetic_tags", "value_columns": ["aesthetic"]}
    _config(cases, "kv_ok.yaml", {"kv": {"files": [{**kv, "out": "kv/a.kv"}]}})
    _config(cases, "kv_climbs.yaml", {"kv": {"files": [{**kv, "out": "../../x.kv"}]}})
    _config(cases, "kv_absolute.yaml", {"kv": {"files": [{**kv, "out": "/tmp/laion-spark-astray.kv"}]}})
    _config(cases, "kv_staging.yaml", {"kv": {"files": [{**kv, "out": "kv/a.kv", "staging": "../staging"}]}})
    _config(cases, "report_out.yaml", {"report": {"out": "../report"}})
    _config(cases, "export_out.yaml", {"aesthetic_embeddings": {"export": "/tmp/laion-spark-ratings"}})
    _config(cases, "umap_subset_newline.yaml", {"umap_sample": {"subset": "aesthetics_6plus\n", "rows": 10}})
    _config(cases, "lake_file.yaml", {"stats": {}}, lake=str(cases / "a_file"))
    _config(cases, "lake_newline.yaml", {"stats": {}}, lake="lake\nx")
    data = yaml.safe_load((cases / "kv_ok.yaml").read_text())
    data["subsets"] = [{"name": "laion_art\n", "threshold": 8.0}]
    (cases / "subset_newline.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.fixture(scope="module")
def hostile(world: World) -> World:  # noqa: F811 - the imported fixture
    _hostile_files(world)
    return world


def delta_versions(lake: Path) -> dict[str, int | None]:
    """The latest commit version of every table of ``lake``."""
    return {p.name: delta_version(p) for p in sorted(lake.iterdir()) if p.is_dir()}


def _fill(cases: World, text: str) -> str:
    return (
        text.replace("{lake}", str(cases.lake))
        .replace("{root}", str(cases.root))
        .replace("{sample}", str(cases.sample))
    )


def test_the_table_holds_over_60_refused_cases_and_every_sql_statement_kind_the_issue_names() -> None:
    assert len(REFUSED) >= 60
    kinds = {c.culprit.split(" is not")[0] for c in SQL_CASES}
    for kind in ("DELETE", "UPDATE", "MERGE INTO", "INSERT OVERWRITE DIRECTORY", "CREATE TABLE", "INSERT INTO"):
        assert kind in kinds, kind


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_a_hostile_input_is_refused_with_one_line_and_nothing_changes_or_appears_anywhere(
    hostile: World, case: Case, cli_on_sail: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [_fill(hostile, arg) for arg in case.argv]
    versions, before = delta_versions(hostile.lake), snapshot(hostile.root)
    astray = [Path("/tmp/laion-spark-astray.kv"), Path("/tmp/laion-spark-ratings")]
    monkeypatch.setenv("LAION_SPARK_OFFLINE", "1")
    monkeypatch.chdir(hostile.root)  # ./spark-warehouse, a relative path: inside the snapshot
    result = CliRunner().invoke(app, argv)
    output = result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert _fill(hostile, case.culprit) in lines[0], lines[0]
    assert "Traceback" not in output
    assert delta_versions(hostile.lake) == versions
    assert snapshot(hostile.root) == before, "a file was written, changed or removed"
    assert not any(p.exists() for p in astray)


def _rows(lake: Path) -> int:
    got = CliRunner().invoke(app, ["sql", "SELECT count(*) AS n FROM joined", "--lake", str(lake), "--csv"])
    assert got.exit_code == 0, got.stdout + got.stderr
    return int(next(csv.DictReader(io.StringIO(got.stdout)))["n"])


@pytest.mark.parametrize("name", list(ODD_NAMES.values()), ids=list(ODD_NAMES))
def test_a_lake_whose_path_engines_read_as_url_syntax_lands_where_it_is_named(
    hostile: World, name: str, cli_on_sail: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = hostile / "odd" / name.replace("/", "_")
    parent.mkdir(parents=True)
    lake = parent / "lake"
    monkeypatch.chdir(hostile.root)
    tags = _fill(hostile, TAGS)
    argv = ["join-tags", "--metadata", _fill(hostile, META), "--collection", "laion2B-en", "--lake", str(lake)]
    result = CliRunner().invoke(
        app, [*argv, "--watermark-tags", f"{tags}/watermark", "--safety-tags", f"{tags}/safety"]
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (hostile / "odd").iterdir()) == [parent.name]  # nothing beside it
    assert sorted(p.name for p in parent.iterdir()) == ["lake"]
    assert sorted(p.name for p in lake.iterdir()) == ["joined", "runs"]
    assert (lake / "joined" / "_delta_log").is_dir() and delta_version(lake / "joined") is not None
    assert _rows(lake) == 200
    for table in (hostile / "odd").rglob("*"):
        assert "%" not in table.name or "%" in name, table  # no percent-encoded folder anywhere
    for leftover in parent.rglob(".laion-spark-probe-*"):
        raise AssertionError(f"probe left behind: {leftover}")
    shutil.rmtree(hostile / "odd")


def test_a_file_uri_names_the_folder_it_encodes(hostile: World, cli_on_sail: None, monkeypatch: pytest.MonkeyPatch):
    from urllib.parse import quote

    lake = hostile / "uri lake #1" / "lake"
    monkeypatch.chdir(hostile.root)
    uri = "file://" + quote(str(lake))
    argv = ["join-tags", "--metadata", _fill(hostile, META), "--collection", "laion2B-en", "--lake", uri]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (lake / "joined" / "_delta_log").is_dir()
    assert _rows(lake) == 200
    assert not [p for p in hostile.root.iterdir() if "%" in p.name]

"""SQL over the lake, read-only by construction: one query over the lake's tables, each a view by its name.

``laion-spark sql`` runs what :func:`read_only_query` accepts and nothing else. The statement is parsed (sqlglot's
Spark dialect, the same on every engine) and accepted only when it is one of

* a query: ``SELECT``, ``WITH ... SELECT``, a set operation (``UNION`` ...), ``VALUES``, ``FROM t SELECT ...``;
* ``SHOW TABLES``, ``SHOW VIEWS``, ``SHOW FUNCTIONS`` (each with an optional ``LIKE 'pattern'``),
  ``SHOW COLUMNS IN t``;
* ``DESCRIBE [TABLE] [EXTENDED | FORMATTED] t``, ``DESCRIBE QUERY <query>``;
* ``EXPLAIN [EXTENDED | FORMATTED | CODEGEN | COST | LOGICAL] <query>``;

and every relation it names is one of the lake's tables (by its bare name: no ``delta.`path```, no
``text.`/etc/passwd```, no ``db.table``) or a ``WITH`` name in scope, a table function is one that only generates
rows (``range``, ``explode`` ...), and no function calls into Java (``reflect``, ``java_method``). What runs is
the statement written back from the checked tree (so the engine runs exactly what was checked, whatever its own
parser would make of odd comments or quoting). Anything else (``DELETE``, ``UPDATE``, ``MERGE``, ``INSERT``,
``CREATE``, ``DROP``, ``SET``, ``SELECT ... INTO``, several statements) is a
:class:`~laion_spark.errors.InputError` naming the statement kind, before the engine sees it: writes to the lake
are the jobs' business.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlglot
from pyspark.sql import DataFrame
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from ..errors import InputError, first_line
from ..paths import PathError, normalise_path
from .tables import read_table, table_exists

if TYPE_CHECKING:
    from ..engine.session import LakeSession

_VIEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: What ``laion-spark sql`` accepts, as its messages say it.
ACCEPTED = "SELECT, WITH ... SELECT, VALUES, SHOW TABLES|VIEWS|FUNCTIONS|COLUMNS, DESCRIBE, EXPLAIN"
#: Table functions that only generate rows from their arguments (no file, no table).
ROW_GENERATORS = frozenset(
    {"range", "explode", "explode_outer", "posexplode", "posexplode_outer", "inline", "inline_outer", "stack"}
)
#: Functions that call Java methods by name (classic Spark): never read-only by construction.
CALLS_CODE = frozenset({"reflect", "java_method", "try_reflect"})
_EXPLAIN_MODES = ("EXTENDED", "FORMATTED", "CODEGEN", "COST", "LOGICAL")
_DESCRIBE_MODES = ("EXTENDED", "FORMATTED")
_DESCRIBE_OTHER = ("DATABASE", "SCHEMA", "NAMESPACE", "CATALOG", "FUNCTION", "DETAIL", "HISTORY")
_QUERY_STARTS = ("SELECT", "WITH", "VALUES", "FROM", "(")
#: Words that, after the first one, still name the kind of a statement (``INSERT OVERWRITE DIRECTORY``).
_KIND_WORDS = frozenset(
    {"OR", "REPLACE", "TEMPORARY", "TEMP", "GLOBAL", "EXTERNAL", "OVERWRITE", "INTO", "LOCAL", "DIRECTORY", "TABLE"}
    | {"VIEW", "DATABASE", "SCHEMA", "NAMESPACE", "FUNCTION", "DATA", "INPATH", "JAR", "FILE", "ARCHIVE", "LAZY"}
)
_DIALECT = Spark()


class QueryRefusedError(InputError):
    """A statement ``laion-spark sql`` does not run: not one read-only query over the lake's tables."""


@dataclass(frozen=True)
class ReadOnlyQuery:
    """A statement :func:`read_only_query` accepted: its ``kind`` (``SELECT``, ``SHOW``, ``DESCRIBE``,
    ``EXPLAIN``) and ``sql``, the text the engine runs (written back from the checked statement)."""

    kind: str
    sql: str


def read_only_query(query: str, tables: Collection[str]) -> ReadOnlyQuery:
    """``query`` checked to be one read-only statement whose relations are among ``tables`` (the lake's views).

    Raises :class:`QueryRefusedError` (exit status 2) naming the statement kind or the relation that is not
    allowed, and :class:`~laion_spark.errors.InputError` for a statement that cannot be parsed.

    Example::

        read_only_query("SELECT count(*) FROM joined", ["joined"]).sql   # 'SELECT COUNT(*) FROM joined'
        read_only_query("DELETE FROM delta.`lake/joined`", ["joined"])   # QueryRefusedError: DELETE ...
    """
    names = {name.lower(): name for name in tables}
    tokens = _tokens(query)
    if not tokens:
        raise InputError("query: empty; give one read-only query")
    word = tokens[0].text.upper()
    if tokens[0].token_type in (TokenType.COMMAND, TokenType.SHOW):
        rest = tokens[1].text if len(tokens) > 1 else ""
        if word == "EXPLAIN":
            return _explain(rest, names)
        if word == "SHOW":
            return _show(rest, names)
        raise _refused(" ".join(re.findall(r"[A-Za-z_]+", query)[:2]).upper())
    if word in ("DESCRIBE", "DESC"):
        return _describe(query, tokens, names)
    return ReadOnlyQuery("SELECT", _query(query, tokens, names))


def _tokens(text: str) -> list[Token]:
    try:
        tokens = _DIALECT.tokenize(text)
    except SqlglotError as err:
        raise InputError(f"query: cannot read it as Spark SQL ({first_line(err)})") from None
    while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
        tokens.pop()
    return tokens


def _kind(tokens: list[Token]) -> str:
    """The statement's kind from its first words: ``DELETE``, ``INSERT OVERWRITE DIRECTORY``, ``CREATE TABLE`` ..."""
    words = [tokens[0].text.upper()]
    for token in tokens[1:5]:
        if token.text.upper() not in _KIND_WORDS:
            break
        words.append(token.text.upper())
    return " ".join(words)


def _refused(kind: str) -> QueryRefusedError:
    return QueryRefusedError(
        f"query: {kind} is not allowed: `laion-spark sql` runs one read-only query ({ACCEPTED}) over the lake's "
        "tables; writes to the lake are the jobs' business"
    )


def _query(text: str, tokens: list[Token], names: dict[str, str]) -> str:
    """The query ``text`` checked (see the module docstring) and written back as Spark SQL."""
    starts_as_query = tokens[0].text.upper() in _QUERY_STARTS
    try:
        statements = [s for s in sqlglot.parse(text, dialect=_DIALECT) if s is not None]
    except SqlglotError as err:
        if not starts_as_query:
            raise _refused(_kind(tokens)) from None
        raise InputError(f"query: cannot parse it as Spark SQL ({first_line(err)})") from None
    if len(statements) != 1:
        raise QueryRefusedError(f"query: {len(statements)} statements; `laion-spark sql` runs one read-only query")
    (tree,) = statements
    if not isinstance(tree, exp.Query | exp.Values) or not starts_as_query:
        # FROM t INSERT ..., WITH ... INSERT ...: the statement's kind is its tree's
        tree_kind = "INSERT" if isinstance(tree, exp.Insert | exp.MultitableInserts) else tree.key.upper()
        raise _refused(tree_kind if starts_as_query else _kind(tokens))
    _check_tree(tree, names)
    return tree.sql(dialect=_DIALECT)


def _check_tree(tree: exp.Expr, names: dict[str, str]) -> None:
    for node in tree.walk():
        if isinstance(node, exp.Into):
            raise _refused("SELECT ... INTO")
        if node is not tree and isinstance(node, exp.DML | exp.DDL | exp.Command):
            raise _refused(node.key.upper())
        if isinstance(node, exp.CTE) and not isinstance(node.this, exp.Query | exp.Values):
            raise _refused(f"WITH {node.this.key.upper()}")
        if isinstance(node, exp.Func) and _function_name(node) in CALLS_CODE:
            raise QueryRefusedError(f"query: function {_function_name(node)} calls Java code; it is not read-only")
        if isinstance(node, exp.Table):
            _check_relation(node, names)


def _function_name(node: exp.Expr) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def _check_relation(table: exp.Table, names: dict[str, str]) -> None:
    """A relation is a lake table by its bare name, a ``WITH`` name in scope, or a row generator."""
    this = table.this
    if isinstance(this, exp.Func):
        if _function_name(this) in ROW_GENERATORS:
            return
        raise QueryRefusedError(
            f"query: table function {_function_name(this)} is not allowed: a query reads the lake's tables by name "
            f"({', '.join(sorted(names.values()))})"
        )
    qualified = table.args.get("db") or table.args.get("catalog")
    name = table.name.lower()
    if not qualified and isinstance(this, exp.Identifier) and (name in names or name in _ctes_in_scope(table)):
        return
    raise QueryRefusedError(
        f"query: {table.sql(dialect=_DIALECT)} is not a table of the lake: a query reads the lake's tables by name "
        f"({', '.join(sorted(names.values()))}), nothing else"
    )


def _ctes_in_scope(node: exp.Expr) -> set[str]:
    """The ``WITH`` names visible at ``node``: those of every enclosing query."""
    found: set[str] = set()
    parent = node.parent
    while parent is not None:
        with_ = parent.args.get("with_") or parent.args.get("with")
        if isinstance(with_, exp.With):
            found |= {cte.alias.lower() for cte in with_.expressions}
        parent = parent.parent
    return found


def _name(token: Token, names: dict[str, str]) -> str:
    """A lake table named by one token, quoted for Spark; :class:`QueryRefusedError` for any other name."""
    if token.token_type in (TokenType.VAR, TokenType.IDENTIFIER) and token.text.lower() in names:
        return f"`{names[token.text.lower()]}`"
    raise QueryRefusedError(f"query: {token.text!r} is not a table of the lake ({', '.join(sorted(names.values()))})")


def _explain(rest: str, names: dict[str, str]) -> ReadOnlyQuery:
    tokens = _tokens(rest)
    if not tokens:
        raise InputError("query: EXPLAIN needs a query to explain")
    mode = tokens[0].text.upper() if tokens[0].text.upper() in _EXPLAIN_MODES else ""
    inner = rest[tokens[1].start :] if mode and len(tokens) > 1 else ("" if mode else rest)
    inner_tokens = _tokens(inner)
    if not inner_tokens:
        raise InputError("query: EXPLAIN needs a query to explain")
    return ReadOnlyQuery(
        "EXPLAIN", " ".join(["EXPLAIN", *([mode] if mode else []), _query(inner, inner_tokens, names)])
    )


def _show(rest: str, names: dict[str, str]) -> ReadOnlyQuery:
    tokens = _tokens(rest)
    words = [t.text.upper() for t in tokens]
    if words[:1] in (["TABLES"], ["VIEWS"], ["FUNCTIONS"]):
        if len(tokens) == 1:
            return ReadOnlyQuery("SHOW", f"SHOW {words[0]}")
        if len(tokens) == 3 and words[1] == "LIKE" and tokens[2].token_type == TokenType.STRING:
            return ReadOnlyQuery("SHOW", f"SHOW {words[0]} LIKE {exp.Literal.string(tokens[2].text).sql(_DIALECT)}")
    if words[:1] == ["COLUMNS"] and len(tokens) == 3 and words[1] in ("IN", "FROM"):
        return ReadOnlyQuery("SHOW", f"SHOW COLUMNS IN {_name(tokens[2], names)}")
    shown = " ".join(["SHOW", *words[:1]])
    if words[:1] in (["TABLES"], ["VIEWS"], ["FUNCTIONS"], ["COLUMNS"]):
        raise QueryRefusedError(
            f"query: {shown} takes only LIKE 'pattern' (COLUMNS: IN a lake table) here: `laion-spark sql` "
            f"accepts {ACCEPTED}"
        )
    raise _refused(shown)


def _describe(query: str, tokens: list[Token], names: dict[str, str]) -> ReadOnlyQuery:
    at = 1
    if at < len(tokens) and tokens[at].text.upper() == "QUERY":
        inner = query[tokens[at].end + 1 :]
        return ReadOnlyQuery("DESCRIBE", f"DESCRIBE QUERY {_query(inner, _tokens(inner), names)}")
    if at < len(tokens) and tokens[at].text.upper() in _QUERY_STARTS:
        inner = query[tokens[at].start :]
        return ReadOnlyQuery("DESCRIBE", f"DESCRIBE QUERY {_query(inner, _tokens(inner), names)}")
    if at < len(tokens) and tokens[at].text.upper() == "TABLE":
        at += 1
    mode = tokens[at].text.upper() if at < len(tokens) and tokens[at].text.upper() in _DESCRIBE_MODES else ""
    at += 1 if mode else 0
    if at < len(tokens) and tokens[at].text.upper() in _DESCRIBE_OTHER:
        raise _refused(f"DESCRIBE {tokens[at].text.upper()}")
    if len(tokens) != at + 1:
        given = query[tokens[at].start :] if at < len(tokens) else "nothing"
        raise QueryRefusedError(
            f"query: DESCRIBE takes one table of the lake by name ({', '.join(sorted(names.values()))}), got {given!r}"
        )
    return ReadOnlyQuery("DESCRIBE", " ".join(["DESCRIBE TABLE", *([mode] if mode else []), _name(tokens[at], names)]))


def lake_views(lake: LakeSession, lake_dir: str | Path) -> list[Path]:
    """The table folders of the local ``lake_dir`` that can be views (named like identifiers), sorted.

    Reads the file system only. Raises :class:`InputError` for a ``lake_dir`` that is not a folder or holds no
    table.
    """
    try:
        root = Path(normalise_path(lake_dir))
    except PathError as err:
        raise InputError(f"--lake: {err}") from None
    if not root.is_dir():
        raise InputError(f"--lake {root}: not a folder")
    found = [p for p in sorted(root.iterdir()) if p.is_dir() and _VIEW_NAME.match(p.name) and table_exists(lake, p)]
    if not found:
        raise InputError(f"--lake {root}: holds no {lake.table_format} table")
    return found


def register_views(lake: LakeSession, lake_dir: str | Path) -> list[str]:
    """Register each table folder of the local ``lake_dir`` as a view named like the folder; returns the names.

    Raises :class:`InputError` for a folder that is not a lake, or holds no table.
    """
    folders = lake_views(lake, lake_dir)
    for folder in folders:
        read_table(lake, folder).createOrReplaceTempView(folder.name)
    return [folder.name for folder in folders]


def lake_sql(lake: LakeSession, lake_dir: str | Path, query: str) -> DataFrame:
    """``query`` over the lake's views, checked read-only (:func:`read_only_query`) before the engine sees it,
    then analysed now.

    Raises :class:`QueryRefusedError` for a statement that is not one read-only query over the lake's tables,
    and :class:`InputError` naming the query's first problem (unknown column, syntax).
    """
    names = [folder.name for folder in lake_views(lake, lake_dir)]
    checked = read_only_query(query, names)
    register_views(lake, lake_dir)
    try:
        frame = lake.spark.sql(checked.sql)
        frame.schema  # noqa: B018 - analyse now: a bad query is the user's input
    except Exception as err:  # noqa: BLE001 - engines raise different types for a bad query
        raise InputError(f"query: {first_line(err)} (tables: {', '.join(names)})") from None
    return frame

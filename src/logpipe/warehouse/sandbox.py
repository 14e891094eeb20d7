"""The check every user query passes before it runs: ClickHouse's own parser, then an allowlist.

ClickHouse parses the query (``parseQueryToJSON``: its parser, its AST, one statement only); this
module walks that AST and refuses, with the reason, anything but a read of the analytics database:

- statement kinds: SELECT (with UNION, INTERSECT, EXCEPT, WITH, subqueries) and EXPLAIN of one;
- no INTO OUTFILE, FORMAT, COMPRESSION or SETTINGS clause;
- tables: the analytics database's, and a few ``system`` tables of metadata; nothing of any other
  database, also not through ``IN db.table``;
- table functions: an allowlist of ones that generate rows (``numbers``, ``values``, ...); ``file``,
  ``url``, ``remote``, ``executable``, ``s3``, ``merge``, ``python`` and the others are refused;
- functions that read files, the network, other tables or the server's configuration (``file``,
  ``joinGet``, ``getServerSetting``, the AI and machine-learning ones, ...); ``dictGet`` and ``dictHas``
  only of logpipe's dictionaries over the dimension tables, named by a string literal;
- AST node types outside a list of the ones SELECT queries are made of;
- query parameters that are not bound as ``{name:Type}`` placeholders.

Strings are never matched: a name is judged only where the parser says it is a table, a table
function or a function. The engine's ``readonly`` session and, on a ClickHouse server, the
read-only user's grants stand behind this check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from logpipe.warehouse.queries import DICTIONARIES


class QueryRefused(ValueError):
    """A query that the sandbox does not run; the message says why."""


STATEMENTS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery", "ExplainQuery"})
EXPLAIN_KINDS = frozenset({"EXPLAIN", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN QUERY TREE", "EXPLAIN PLAN",
                           "EXPLAIN PIPELINE", "EXPLAIN ESTIMATE"})
NODE_TYPES = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExplainQuery", "ExpressionList",
    "Subquery", "WithElement", "TablesInSelectQuery", "TablesInSelectQueryElement", "TableExpression",
    "TableIdentifier", "TableJoin", "ArrayJoin", "Identifier", "Literal", "Function", "Asterisk",
    "QualifiedAsterisk", "ColumnsRegexpMatcher", "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher",
    "QualifiedColumnsListMatcher", "ColumnsTransformerList", "ColumnsExceptTransformer",
    "ColumnsReplaceTransformer", "ColumnsApplyTransformer", "OrderByElement", "WindowDefinition",
    "WindowListElement", "QueryParameter", "InterpolateElement", "SampleRatio", "DataType", "NameTypePair",
})
# Clauses that write, change settings or choose an output format: the API chooses the format itself.
REFUSED_CLAUSES = {"out_file": "INTO OUTFILE", "format_ast": "FORMAT", "format": "FORMAT",
                   "compression": "COMPRESSION", "compression_level": "COMPRESSION", "settings": "SETTINGS",
                   "settings_ast": "SETTINGS"}
TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries",
                             "values", "generaterandom", "primes", "view", "null"})
SYSTEM_TABLES = frozenset({"one", "numbers", "numbers_mt", "zeros", "zeros_mt", "parts", "columns", "merges",
                           "functions", "table_functions", "data_type_families", "time_zones"})
# Names compared in lower case: ClickHouse takes some function names in any case (FILE is file).
DENIED_FUNCTIONS = frozenset(name.lower() for name in (
    "file", "catboostEvaluate", "modelEvaluate", "evalMLMethod", "naiveBayesClassifier",
    "naiveBayesClassifierWithAllProbs", "naiveBayesClassifierWithProb", "hasColumnInTable", "getClientHTTPHeader",
    "getMacro", "getServerSetting", "getMergeTreeSetting", "getServerPort", "globalVariable", "showCertificate",
    "currentRequestURL", "sleep", "sleepEachRow", "zookeeperSessionUptime", "addressToLine",
    "addressToLineWithInlines", "addressToSymbol", "demangle", "logTrace", "fuzzQuery", "icebergBucket",
    "icebergTruncate", "transactionID", "transactionLatestSnapshot", "transactionOldestSnapshot",
    "initializeAggregation", "filesystemAvailable", "filesystemCapacity", "filesystemUnreserved",
    "getOSKernelVersion", "buildId", "serverUUID", "mergeTreePartInfo", "isMergeTreePartCoveredBy", "assignCentroid",
    "tid",
))
# "ai": aiGenerate, aiEmbed and the others call a model over the network; "region": the embedded geobase
DENIED_PREFIXES = ("dictget", "dicthas", "dictisin", "joinget", "region", "ai")
# The categories of the engine's own function list that the names and prefixes above cover (a test
# checks every function of them against the engine's list).
DENIED_CATEGORIES = ("Dictionary", "Embedded Dictionary", "Introspection", "Machine Learning", "AI")
IN_FUNCTIONS = frozenset({"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin",
                          "globalnotnullin"})


LOOKUPS = ("dictget", "dicthas")  # of logpipe's dictionaries only (_check_lookup)


def function_denied(name: str) -> bool:
    lowered = name.lower()
    return lowered in DENIED_FUNCTIONS or lowered.startswith(DENIED_PREFIXES)


def check_query(ast: dict[str, Any], database: str, parameters: dict[str, Any] | None = None) -> None:
    """Raise ``QueryRefused`` unless the parsed query only reads; ``ast`` is ``parseQueryToJSON``'s."""
    kind = ast.get("type")
    if kind not in STATEMENTS:
        raise QueryRefused(f"only SELECT queries run here, not {_statement_name(kind)}")
    if kind == "ExplainQuery":
        if ast.get("kind") not in EXPLAIN_KINDS:
            raise QueryRefused(f"{ast.get('kind')} is not allowed")
        if (ast.get("query") or {}).get("type") not in STATEMENTS - {"ExplainQuery"}:
            raise QueryRefused("EXPLAIN only of a SELECT query")
    bound: set[str] = set()
    for key, node in _walk(ast, None):
        if key in REFUSED_CLAUSES and node:
            raise QueryRefused(f"{REFUSED_CLAUSES[key]} is not allowed in a query here")
        if key == "is_into_outfile_with_stdout" and node is True:
            raise QueryRefused("INTO OUTFILE is not allowed in a query here")
        if not isinstance(node, dict):
            continue
        node_type = node.get("type")
        if node_type is None:
            continue
        if node_type not in NODE_TYPES:
            raise QueryRefused(f"{node_type} is not allowed in a query here")
        if node_type == "TableIdentifier":
            _check_table(node, database)
        elif node_type == "Function":
            _check_function(node, key, database)
        elif node_type == "QueryParameter":
            bound.add(str(node.get("name")))
    unbound = sorted(set(parameters or {}) - bound)
    if unbound:
        raise QueryRefused(f"parameter {unbound[0]!r} is not used as a {{{unbound[0]}:Type}} placeholder")


def _walk(node: Any, key: str | None) -> Iterator[tuple[str | None, Any]]:
    """Every value of the tree with the key it stands under (a list's items under the list's key)."""
    yield key, node
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from _walk(child, child_key)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child, key)


def _check_table(node: dict[str, Any], database: str) -> None:
    parts = node.get("name_parts") or []
    if len(parts) < 2:
        return  # unqualified: a table of the session's database (analytics) or a WITH name
    _check_qualified(str(parts[0]), str(parts[-1]), database)


def _check_qualified(db: str, table: str, database: str) -> None:
    if db == database:
        return
    if db == "system" and table in SYSTEM_TABLES:
        return
    if db == "system":
        raise QueryRefused(f"system.{table} is not readable here; system tables allowed: "
                           f"{', '.join(sorted(SYSTEM_TABLES))}")
    raise QueryRefused(f"database {db!r} is not readable here, only {database!r}")


def _check_function(node: dict[str, Any], key: str | None, database: str) -> None:
    name = str(node.get("name", ""))
    if key == "table_function":
        if name.lower() not in TABLE_FUNCTIONS:
            raise QueryRefused(f"table function {name}() is not allowed; allowed: {', '.join(sorted(TABLE_FUNCTIONS))}")
        return
    if name.lower().startswith(LOOKUPS):
        _check_lookup(node, name, database)
        return
    if function_denied(name):
        raise QueryRefused(f"function {name}() is not allowed in a query here")
    if name.lower() in IN_FUNCTIONS:
        arguments = (node.get("arguments") or {}).get("children") or []
        if len(arguments) == 2 and arguments[1].get("type") in ("Identifier", "TableIdentifier"):
            parts = arguments[1].get("name_parts") or []
            if len(parts) >= 2:  # `x IN db.table` reads the table
                _check_qualified(str(parts[0]), str(parts[-1]), database)


def _check_lookup(node: dict[str, Any], name: str, database: str) -> None:
    arguments = (node.get("arguments") or {}).get("children") or []
    first = arguments[0] if arguments else {}
    value = (first.get("value") or {}) if first.get("type") == "Literal" else {}
    dictionary = value.get("value") if value.get("field_type") == "String" else None
    allowed = {*DICTIONARIES, *(f"{database}.{d}" for d in DICTIONARIES)}
    if dictionary not in allowed:
        raise QueryRefused(f"{name}() reads only the dictionaries {', '.join(sorted(DICTIONARIES))}, named by a "
                           "string literal")


def _statement_name(kind: object) -> str:
    text = str(kind or "this statement").removesuffix("Query")
    return "".join(f" {c}" if c.isupper() else c for c in text).strip().upper() or "this statement"

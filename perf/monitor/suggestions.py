"""Suggested indexes, proven before shown.

PgHero's suggestions are heuristics read from query texts; these are measured by the planner:

1. ``pg_qualstats`` (preloaded) samples the predicates the executor evaluates: table, column,
   operator, the query (``queryid``, as in pg_stat_statements), how many rows it filtered out,
   and whether it ran as an index condition or as a filter after a scan.
2. Predicates evaluated as filters are grouped per table and per AND-expression (their
   ``qualid``); each group gives one candidate B-tree index: its equality columns (most
   distinct values first), then one range column. A candidate an existing valid B-tree already
   covers (same leading columns) is skipped.
3. Each candidate is created hypothetically with ``hypopg_create_index`` (nothing is built;
   it exists only in this session's planner) and the real queries that used its predicates are
   EXPLAINed (never ANALYZEd) without and with it: the example pg_qualstats sampled with its
   constants, or else pg_stat_statements' normalised text planned generically. When the plan
   with it still sorts the table's rows (``ORDER BY created_at DESC`` after ``WHERE
   conversation_id = ...``), the candidate extended by the sort columns is tried too.
4. A candidate is kept only if the planner uses it and the queries' total estimated cost falls
   by at least MIN_SAVING_PCT; of the two forms, the narrower unless the wider saves as much
   again.

The work is bounded: at most MAX_CANDIDATES candidates (the predicates that filtered most rows
first), MAX_QUERIES_PER_CANDIDATE queries each, every statement under the page's statement
timeout, and no new candidate once PERF_STATEMENT_TIMEOUT_MS has been spent on the proofs. Each
proof runs in a transaction that is rolled back, with a short lock timeout, and
``hypopg_reset()`` afterwards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from psycopg import sql

from perf.monitor.charts import nice
from perf.monitor.db import fetch

logger = logging.getLogger("bountyexpo.monitor")

MAX_CANDIDATES = 8
MAX_QUERIES_PER_CANDIDATE = 5
# An index costs space and a write on every insert: a saving smaller than this is not worth it.
MIN_SAVING_PCT = 20
# A proof never waits behind DDL (a migration's ALTER TABLE): it gives up instead.
LOCK_TIMEOUT_MS = 200
# The name of the prepared statement a normalised text is planned through.
PROBE = "perf_index_probe"

# EXPLAIN without ANALYZE runs nothing; still, only statements that read rows are planned.
EXPLAINABLE = re.compile(r"^\s*(SELECT|WITH|UPDATE|DELETE|VALUES|TABLE)\b", re.IGNORECASE)
# pg_stat_statements replaces constants with $1, $2...: such a text is planned generically.
PARAMETER = re.compile(r"\$\d+")

NO_VALUE = "\u2013"  # an en dash, for a cost that could not be measured
BTREE_EQUAL = 3  # pg_amop strategy numbers of the btree access method: 1 <, 2 <=, 3 =, 4 >=, 5 >

STATUS_SQL = """
SELECT want.name, e.name IS NOT NULL AS available, e.installed_version IS NOT NULL AS installed,
       current_setting('shared_preload_libraries') AS preload,
       current_setting('server_version_num')::int / 10000 AS major
FROM unnest(%s::text[]) AS want(name)
LEFT JOIN pg_available_extensions e ON e.name = want.name
"""

# This database's predicates of the form "column <op> constant" on user tables, with the
# operator's btree strategy (NULL: not a btree operator, LIKE, @@...) and the column's
# distinct values from pg_stats (negative there: a fraction of the rows). Both sides are
# materialised: pg_qualstats() looks like one row to the planner, which would otherwise expand
# the pg_stats view once per predicate. pg_qualstats keeps one entry per constant value
# (track_constants), up to pg_qualstats.max (10,000 on the local cluster): the entries are
# summed per predicate first, so the joins see its distinct predicates (a few hundred).
# bench/qualstats_sql.py measures both ways.
QUALS_SQL = """
WITH entries AS MATERIALIZED (
    SELECT q.lrelid, q.lattnum, coalesce(q.qualid, q.qualnodeid) AS qual_group, q.queryid,
           q.eval_type, q.opno, sum(q.nbfiltered) AS nbfiltered,
           sum(q.execution_count) AS execution_count, count(*) AS entries
    FROM pg_qualstats() q
    WHERE q.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND q.rrelid IS NULL AND q.lattnum > 0 AND coalesce(q.queryid, 0) <> 0
    GROUP BY q.lrelid, q.lattnum, coalesce(q.qualid, q.qualnodeid), q.queryid, q.eval_type, q.opno
),
quals AS MATERIALIZED (
    SELECT q.lrelid AS table_oid, n.nspname AS schema, c.relname AS table, c.reltuples,
           q.lattnum AS attnum, a.attname AS column, q.qual_group, q.queryid, q.eval_type,
           q.nbfiltered, q.execution_count, q.opno, q.entries
    FROM entries q
    JOIN pg_class c ON c.oid = q.lrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = q.lrelid AND a.attnum = q.lattnum AND NOT a.attisdropped
    WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
),
strategies AS MATERIALIZED (
    SELECT o.amopopr AS opno, min(o.amopstrategy) AS strategy
    FROM pg_amop o JOIN pg_am m ON m.oid = o.amopmethod
    WHERE m.amname = 'btree' AND o.amopopr IN (SELECT opno FROM quals)
    GROUP BY o.amopopr
),
stats AS MATERIALIZED (
    SELECT st.schemaname, st.tablename, st.attname, st.n_distinct
    FROM pg_stats st
    WHERE NOT st.inherited AND (st.schemaname, st.tablename) IN (SELECT q.schema, q.table FROM quals q)
)
SELECT q.table_oid, q.schema, q.table, q.attnum, q.column, q.qual_group, q.queryid, q.eval_type,
       q.nbfiltered, q.execution_count, q.entries, s.strategy,
       CASE WHEN coalesce(st.n_distinct, 0) >= 0 THEN coalesce(st.n_distinct, 0)
            ELSE -st.n_distinct * greatest(q.reltuples, 0) END AS distinct_values
FROM quals q
LEFT JOIN strategies s ON s.opno = q.opno
LEFT JOIN stats st ON st.schemaname = q.schema AND st.tablename = q.table AND st.attname = q.column
"""

EXAMPLES_SQL = """
SELECT q.queryid, pg_qualstats_example_query(q.queryid) AS example, NULL::text AS normalised,
       NULL::bigint AS calls
FROM unnest(%s::bigint[]) AS q(queryid)
"""

# The same, with pg_stat_statements' text and calls when it is installed.
EXAMPLES_AND_STATEMENTS_SQL = """
SELECT q.queryid, pg_qualstats_example_query(q.queryid) AS example, s.query AS normalised, s.calls
FROM unnest(%s::bigint[]) AS q(queryid)
LEFT JOIN LATERAL (
    SELECT query, calls FROM pg_stat_statements s
    WHERE s.queryid = q.queryid AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY calls DESC LIMIT 1
) s ON true
"""


@dataclass(frozen=True)
class TableModel:
    """The model behind a table, to write a suggestion as a ``Meta.indexes`` entry."""

    label: str
    model_name: str
    fields: dict[str, str]  # column -> field name


@dataclass
class Candidate:
    """An index the predicates ask for: equality columns, then at most one range column; or,
    without a range column, the columns a query then sorts this table's rows by (``sort``, read
    from the plan with the narrower candidate), so the index also returns them in order."""

    table_oid: int
    schema: str
    table: str
    equality: list[tuple[int, str]]  # (attnum, column)
    range: tuple[int, str] | None
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    filtered: int = 0  # rows the predicates filtered out after a scan
    queries: Counter = field(default_factory=Counter)  # queryid -> rows filtered (its weight)

    @property
    def parts(self) -> list[tuple[str, bool]]:
        """The index's columns in order, each with whether it is descending."""
        leading = [column for _, column in self.equality] + ([self.range[1]] if self.range else [])
        return [(column, False) for column in leading] + self.sort

    @property
    def columns(self) -> list[str]:
        return [column for column, _ in self.parts]

    @property
    def label(self) -> str:
        return ", ".join(f"{column} DESC" if descending else column for column, descending in self.parts)

    @property
    def key(self) -> tuple[int, tuple[tuple[str, bool], ...]]:
        return self.table_oid, tuple(self.parts)

    def create_sql(self, *, name: str | None = None, concurrently: bool = False) -> sql.Composed:
        return sql.SQL("CREATE INDEX {concurrently}{name}ON {table} ({columns})").format(
            concurrently=sql.SQL("CONCURRENTLY " if concurrently else ""),
            name=sql.SQL("{} ").format(sql.Identifier(name)) if name else sql.SQL(""),
            table=sql.Identifier(self.schema, self.table),
            columns=sql.SQL(", ").join(
                sql.SQL("{} DESC").format(sql.Identifier(column)) if descending else sql.Identifier(column)
                for column, descending in self.parts
            ),
        )


@dataclass
class QueryText:
    queryid: int
    text: str
    sampled: bool  # True: pg_qualstats' example with its constants; False: normalised, generic plan
    calls: int | None


@dataclass
class QueryCost:
    query: QueryText
    before: float | None = None
    after: float | None = None
    uses_index: bool = False
    error: str | None = None

    @property
    def before_display(self) -> str:
        return NO_VALUE if self.before is None else nice(self.before)

    @property
    def after_display(self) -> str:
        return NO_VALUE if self.after is None else nice(self.after)


@dataclass
class Suggestion:
    candidate: Candidate
    statement: str  # CREATE INDEX CONCURRENTLY ...
    model_line: str  # models.Index(...) for the model's Meta.indexes, or ""
    model: str  # app_label.Model, or ""
    before: float
    after: float
    hypothetical_bytes: int | None
    queries: list[QueryCost]

    @property
    def saving_pct(self) -> float:
        return 100 * (self.before - self.after) / self.before if self.before else 0.0

    @property
    def before_display(self) -> str:
        return nice(self.before)

    @property
    def after_display(self) -> str:
        return nice(self.after)

    @property
    def saving_display(self) -> str:
        # nice() would round 99.98 to 100: an index never makes a query free.
        return f"{self.saving_pct:.2f}" if self.saving_pct > 99 else nice(self.saving_pct)


@dataclass
class Suggestions:
    """What the suggestion section shows, including why it may show nothing."""

    problems: list[str] = field(default_factory=list)  # missing extensions and how to get them
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    predicates: int = 0  # predicates pg_qualstats holds for this database
    suggestions: list[Suggestion] = field(default_factory=list)
    rejected: list[tuple[Candidate, str]] = field(default_factory=list)
    covered: list[tuple[Candidate, str]] = field(default_factory=list)  # and the covering index
    stopped: str | None = None
    elapsed_ms: float = 0.0

    @property
    def ready(self) -> bool:
        return not self.problems and self.error is None


def prepare_extensions(conn: psycopg.Connection, result: Suggestions) -> bool:
    """Create pg_qualstats and hypopg in this database when the server has them (no migration:
    another database may lack them); say what is missing and how to get it. Returns whether
    pg_stat_statements is there too (its texts are the fallback when no example was sampled)."""
    wanted = ["pg_qualstats", "hypopg", "pg_stat_statements"]
    status = fetch(conn, STATUS_SQL, [wanted])
    if not status.ok:
        result.error = status.error
        return False
    rows = {row["name"]: row for row in status.rows}
    major = rows["hypopg"]["major"]
    preloaded = [name.strip() for name in rows["hypopg"]["preload"].split(",")]
    for name, package in (("pg_qualstats", "pg-qualstats"), ("hypopg", "hypopg")):
        if not rows[name]["available"]:
            result.problems.append(
                f"{name} is not installed on the database server: apt-get install "
                f"postgresql-{major}-{package} there (deploy/bootstrap.sh does it), then reload this page."
            )
        elif not rows[name]["installed"]:
            # The name is one of the two constants above, never input.
            created = fetch(conn, f"CREATE EXTENSION IF NOT EXISTS {name}")
            if not created.ok:
                result.problems.append(
                    f"CREATE EXTENSION {name} failed ({created.error}); a superuser can run it once in this "
                    "database."
                )
    if "pg_qualstats" not in preloaded:
        result.problems.append(
            "pg_qualstats is not in shared_preload_libraries, so it records nothing: add it and restart "
            "PostgreSQL (deploy/services.sh does it for the local cluster)."
        )
    if not rows["pg_stat_statements"]["installed"]:
        result.notes.append(
            "pg_stat_statements is not installed here: only queries pg_qualstats sampled with their "
            "constants are explained."
        )
    return bool(rows["pg_stat_statements"]["installed"])


def build_candidates(quals: list[dict[str, Any]]) -> list[Candidate]:
    """One candidate per table and AND-group of btree-indexable predicates of which at least one
    ran as a filter, merged when two groups ask for the same columns; the predicates that
    filtered most rows first."""
    groups: dict[tuple[int, int], dict[str, Any]] = {}
    for qual in quals:
        if qual["strategy"] is None:
            continue
        group = groups.setdefault(
            (qual["table_oid"], qual["qual_group"]),
            {"qual": qual, "equality": {}, "range": Counter(), "queries": Counter(), "filter": False},
        )
        column = (qual["attnum"], qual["column"])
        filtered = int(qual["nbfiltered"] or 0)
        if qual["strategy"] == BTREE_EQUAL:
            group["equality"][column] = float(qual["distinct_values"] or 0)
        else:
            group["range"][column] += filtered + 1
        # +1: a query whose predicate filtered nothing yet is still one to explain.
        group["queries"][qual["queryid"]] += filtered + 1
        group["filter"] = group["filter"] or qual["eval_type"] == "f"

    candidates: dict[tuple[int, tuple[tuple[str, bool], ...]], Candidate] = {}
    for group in groups.values():
        if not group["filter"]:
            continue  # every predicate already ran as an index condition
        equality = sorted(group["equality"], key=lambda column: (-group["equality"][column], column[1]))
        ranges = [column for column, _ in group["range"].most_common() if column not in group["equality"]]
        qual = group["qual"]
        candidate = Candidate(
            table_oid=qual["table_oid"],
            schema=qual["schema"],
            table=qual["table"],
            equality=equality,
            range=ranges[0] if ranges else None,
        )
        merged = candidates.setdefault(candidate.key, candidate)
        merged.queries.update(group["queries"])
        merged.filtered += sum(group["queries"].values())
    return sorted(candidates.values(), key=lambda candidate: (-candidate.filtered, candidate.table))


def covering_index(candidate: Candidate, indexes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A valid, whole-table B-tree whose leading key columns are the candidate's equality
    columns (in any order) followed by its range column."""
    equality = {attnum for attnum, _ in candidate.equality}
    for index in indexes:
        if (index["table_oid"], index["method"], index["is_valid"]) != (candidate.table_oid, "btree", True):
            continue
        if index["predicate"] is not None:
            continue
        key = index["attnums"][: index["key_count"]]
        lead = key[: len(equality)]
        if len(lead) < len(equality) or set(lead) != equality:
            continue
        if candidate.range is None or key[len(equality) : len(equality) + 1] == [candidate.range[0]]:
            return index
    return None


def query_texts(conn: psycopg.Connection, queryids: list[int], *, statements: bool) -> dict[int, QueryText]:
    """queryid -> the text to EXPLAIN: pg_qualstats' sampled example (real constants) when it
    kept one, else pg_stat_statements' normalised text; only statements that read rows."""
    section = fetch(conn, EXAMPLES_AND_STATEMENTS_SQL if statements else EXAMPLES_SQL, [queryids])
    texts = {}
    for row in section.rows:
        text, sampled = (row["example"], True) if row["example"] else (row["normalised"], False)
        if text and EXPLAINABLE.match(text):
            texts[row["queryid"]] = QueryText(row["queryid"], text.strip().rstrip(";"), sampled, row["calls"])
    return texts


def _plan(conn: psycopg.Connection, query: QueryText) -> list[dict[str, Any]]:
    """EXPLAIN (FORMAT JSON) of a query, in a savepoint so a failure leaves the proof's
    transaction usable. ``binary=True`` sends it with the extended protocol, which refuses a
    text holding more than one statement."""
    if not PARAMETER.search(query.text):
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + query.text, binary=True)
            return cursor.fetchone()[0]
    # A normalised text: prepare it and plan it generically (plan_cache_mode is set by the
    # caller), whatever the values; NULL stands for each parameter.
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(f"PREPARE {PROBE} AS " + query.text, binary=True)
    try:
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(cardinality(parameter_types), 0) FROM pg_prepared_statements "
                "WHERE name = %s",
                [PROBE],
            )
            count = cursor.fetchone()[0]
            arguments = f"({', '.join(['NULL'] * count)})" if count else ""
            cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {PROBE}{arguments}", binary=True)
            return cursor.fetchone()[0]
    finally:
        conn.execute(f"DEALLOCATE {PROBE}")


def _cost(
    conn: psycopg.Connection, query: QueryText, hypothetical: str | None = None
) -> tuple[float, bool, dict[str, Any]]:
    """The plan's total cost, whether it uses the hypothetical index named, and the plan."""
    plan = _plan(conn, query)
    uses = hypothetical is not None and hypothetical in json.dumps(plan)
    return float(plan[0]["Plan"]["Total Cost"]), uses, plan[0]["Plan"]


# A sort key the plan prints for a plain column: "alias.column", optionally DESC. Expressions,
# collations and explicit NULLS orders are left alone (a plain index column would not match).
SORT_KEY = re.compile(r'^(?:"?(?P<alias>[^".\s]+)"?\.)?"?(?P<column>[^".\s()]+)"?(?P<desc> DESC)?$')


def _sort_keys(plan: dict[str, Any], table: str) -> list[tuple[str, bool]]:
    """The columns a Sort node orders this table's rows by, when it sorts the output of a scan
    of the table itself (an index on the filter columns followed by these returns the rows
    already in order, and the sort goes)."""
    for node in _nodes(plan):
        if node.get("Node Type") not in ("Sort", "Incremental Sort") or not node.get("Plans"):
            continue
        child = node["Plans"][0]
        if child.get("Relation Name") != table:
            continue
        keys = []
        for key in node.get("Sort Key", []):
            match = SORT_KEY.match(key)
            if not match or match["alias"] not in (None, child.get("Alias"), table):
                return []
            keys.append((match["column"], bool(match["desc"])))
        return keys
    return []


# The statement's last ORDER BY (the outer one, in the SQL Django writes), up to LIMIT, OFFSET,
# FETCH, FOR UPDATE or the end.
ORDER_BY = re.compile(
    r"\bORDER\s+BY\s+(?P<items>.+?)\s*(?:\bLIMIT\b|\bOFFSET\b|\bFETCH\b|\bFOR\b|$)", re.I | re.S
)
ORDER_ITEM = re.compile(
    r'^(?:"?(?P<alias>[^".\s]+)"?\.)?"?(?P<column>[^".\s()]+)"?(?:\s+(?P<direction>ASC|DESC))?$', re.I
)


def _order_by(text: str, table: str) -> list[tuple[str, bool]]:
    """The columns of the query's last ORDER BY when each is a plain column of ``table`` (or
    unqualified); nothing for expressions, NULLS orders or subqueries. A guess from the text,
    which the EXPLAIN that follows proves or drops."""
    matches = list(ORDER_BY.finditer(text))
    if not matches:
        return []
    keys = []
    for item in matches[-1]["items"].split(","):
        match = ORDER_ITEM.match(item.strip())
        if not match or match["alias"] not in (None, table):
            return []
        keys.append((match["column"], (match["direction"] or "").upper() == "DESC"))
    return keys


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a JSON plan, top down."""
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _describe(exc: psycopg.Error) -> str:
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return f"timed out after {settings.PERF_STATEMENT_TIMEOUT_MS} ms"
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return "a lock was held (DDL running?)"
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"


@dataclass
class Variant:
    """A candidate as measured: the queries' costs with it, its estimated size."""

    candidate: Candidate
    costs: list[QueryCost]
    size: int | None


def _measure(
    conn: psycopg.Connection, candidate: Candidate, queries: list[QueryText], before: dict[int, QueryCost]
) -> tuple[Variant, list[dict[str, Any] | None]]:
    """Create the candidate hypothetically and EXPLAIN the queries with it (and the plans, one
    per query, None where it failed)."""
    statement = candidate.create_sql().as_string(conn)
    _, name, size = conn.execute(
        "SELECT indexrelid, indexname, hypopg_relation_size(indexrelid) FROM hypopg_create_index(%s)",
        [statement],
    ).fetchone()
    costs, plans = [], []
    for query in queries:
        known = before[query.queryid]
        measured, plan = QueryCost(query, before=known.before, error=known.error), None
        if measured.error is None:
            try:
                measured.after, measured.uses_index, plan = _cost(conn, query, hypothetical=name)
            except psycopg.Error as exc:
                measured.error = _describe(exc)
        costs.append(measured)
        plans.append(plan)
    return Variant(candidate, costs, size), plans


def prove(
    conn: psycopg.Connection,
    candidate: Candidate,
    queries: list[QueryText],
    before: dict[int, QueryCost],
) -> list[Variant]:
    """EXPLAIN the queries without the candidate (cached in ``before`` across candidates: no
    hypothetical index exists then) and with it; then, when the plan with it still sorts the
    table's rows, with the candidate extended by the sort columns. All in a transaction that is
    rolled back; hypopg_reset() afterwards, since hypothetical indexes are not transactional."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}")
            conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            for query in queries:
                if query.queryid not in before:
                    measured = QueryCost(query)
                    try:
                        measured.before, _, _ = _cost(conn, query)
                    except psycopg.Error as exc:
                        measured.error = _describe(exc)
                    before[query.queryid] = measured
            narrow, plans = _measure(conn, candidate, queries, before)
            variants = [narrow]
            equality = {column for _, column in candidate.equality}
            for query, plan in zip(queries, plans, strict=True) if candidate.range is None else []:
                # The order a Sort node still imposes with the narrow index; else the query's
                # own ORDER BY (the narrow index may go unused because another index already
                # returns the rows in that order, filtering them as it goes).
                keys = (_sort_keys(plan, candidate.table) if plan else []) or _order_by(
                    query.text, candidate.table
                )
                sort = [key for key in keys if key[0] not in equality]
                if sort:
                    conn.execute("SELECT hypopg_reset()")
                    wider = dataclasses.replace(candidate, sort=sort)
                    variants.append(_measure(conn, wider, queries, before)[0])
                    break  # the heaviest query's order: one extra variant at most
            return variants
    finally:
        try:
            conn.execute("SELECT hypopg_reset()")
        except psycopg.Error as exc:  # the connection is gone: its hypothetical indexes with it
            logger.warning("hypopg_reset failed: %s", exc)


def judge(variant: Variant) -> tuple[float, float, str | None]:
    """Total cost before and with the variant, and why it is not worth suggesting (or None)."""
    judged = [cost for cost in variant.costs if cost.before is not None and cost.after is not None]
    before = sum(cost.before for cost in judged)
    after = sum(cost.after for cost in judged)
    if not judged:
        return before, after, "none of its queries could be explained"
    if not any(cost.uses_index for cost in judged):
        return before, after, "the planner would not use it"
    if after > before * (1 - MIN_SAVING_PCT / 100):
        return (
            before,
            after,
            (f"cost {nice(before)} to {nice(after)}: under the {MIN_SAVING_PCT} % saving worth an index"),
        )
    return before, after, None


def _index_name(candidate: Candidate, model: TableModel | None) -> str:
    """A name Django accepts in Meta.indexes (30 characters at most): the model (or table) and
    the columns, shortened with a hash of the whole when too long."""
    columns = [column.removesuffix("_id") for column in candidate.columns]
    full = "_".join([model.model_name if model else candidate.table, *columns])
    if len(full) > 26:
        digest = hashlib.sha256(full.encode()).hexdigest()[:5]
        full = f"{full[:20].rstrip('_')}_{digest}"
    return f"{full}_idx"


def _model_line(candidate: Candidate, model: TableModel | None, name: str) -> str:
    if model is None or not all(column in model.fields for column in candidate.columns):
        return ""
    fields = ", ".join(
        f'"{"-" if descending else ""}{model.fields[column]}"' for column, descending in candidate.parts
    )
    return f'models.Index(fields=[{fields}], name="{name}")'


def suggest_indexes(
    conn: psycopg.Connection | None,
    indexes: list[dict[str, Any]],
    *,
    models: dict[str, TableModel],
) -> Suggestions:
    """The proven suggestions for this database; ``indexes`` are the catalog rows of the page
    (to skip candidates an existing index covers), ``models`` the tables' models."""
    started = time.monotonic()
    result = Suggestions()
    if conn is None:
        result.error = "PostgreSQL is unreachable."
        return result
    statements = prepare_extensions(conn, result)
    if not result.ready:
        return result
    quals = fetch(conn, QUALS_SQL)
    if not quals.ok:
        result.error = quals.error
        return result
    result.predicates = sum(qual["entries"] for qual in quals.rows)

    candidates = []
    for candidate in build_candidates(quals.rows):
        cover = covering_index(candidate, indexes)
        if cover is not None:
            result.covered.append((candidate, cover["name"]))
        else:
            candidates.append(candidate)
    if len(candidates) > MAX_CANDIDATES:
        result.notes.append(
            f"{len(candidates)} candidates; the {MAX_CANDIDATES} whose predicates filtered most rows "
            "are tried."
        )
        candidates = candidates[:MAX_CANDIDATES]

    wanted = sorted({queryid for candidate in candidates for queryid in candidate.queries})
    texts = query_texts(conn, wanted, statements=statements) if wanted else {}
    budget_s = settings.PERF_STATEMENT_TIMEOUT_MS / 1000
    before: dict[int, QueryCost] = {}
    for position, candidate in enumerate(candidates):
        if time.monotonic() - started > budget_s:
            result.stopped = (
                f"Stopped after {position} of {len(candidates)} candidates: the proofs' time budget "
                f"({settings.PERF_STATEMENT_TIMEOUT_MS} ms, PERF_STATEMENT_TIMEOUT_MS) ran out."
            )
            break
        ranked = [texts[queryid] for queryid, _ in candidate.queries.most_common() if queryid in texts]
        queries = ranked[:MAX_QUERIES_PER_CANDIDATE]
        if not queries:
            result.rejected.append((candidate, "no query text to explain (not sampled, or not a read)"))
            continue
        try:
            variants = prove(conn, candidate, queries, before)
        except psycopg.Error as exc:
            result.rejected.append((candidate, _describe(exc)))
            continue
        judged = [(variant, *judge(variant)) for variant in variants]
        passing = [entry for entry in judged if entry[3] is None]
        if not passing:
            reasons = [f"({entry[0].candidate.label}) {entry[3]}" for entry in judged]
            result.rejected.append((candidate, judged[0][3] if len(judged) == 1 else "; ".join(reasons)))
            continue
        # The cheapest; the narrower one unless the wider saves another MIN_SAVING_PCT.
        variant, total_before, total_after, _ = passing[0]
        for other in passing[1:]:
            if other[2] < total_after * (1 - MIN_SAVING_PCT / 100):
                variant, total_before, total_after, _ = other
        chosen = variant.candidate
        model = models.get(chosen.table)
        name = _index_name(chosen, model)
        result.suggestions.append(
            Suggestion(
                candidate=chosen,
                statement=chosen.create_sql(name=name, concurrently=True).as_string(conn) + ";",
                model_line=_model_line(chosen, model, name),
                model=model.label if model else "",
                before=total_before,
                after=total_after,
                hypothetical_bytes=variant.size,
                queries=variant.costs,
            )
        )
    result.suggestions.sort(key=lambda suggestion: suggestion.after - suggestion.before)
    result.elapsed_ms = (time.monotonic() - started) * 1000
    return result

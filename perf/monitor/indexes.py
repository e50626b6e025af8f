"""The "Indexes and space" page: what each table and index costs, and whether it earns its keep.

Per table: rows, table / index / TOAST sizes, index against sequential scans, an estimated
bloat. Per index: unused ones (zero scans since the statistics were reset), duplicates (same
columns, or a column prefix of another index), invalid ones (a failed CREATE INDEX
CONCURRENTLY); every index a model declares in ``Meta.indexes`` with the comment that names
the query it serves, read from the model's source, and the database indexes no model declares.
Suggested indexes come from ``suggestions`` (pg_qualstats predicates, proven with hypopg).

``index_problems()`` is the overview's summary of the same numbers.
"""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
import tokenize
from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.urls import reverse
from django.utils.timesince import timesince

from perf.monitor import suggestions
from perf.monitor.charts import nice
from perf.monitor.db import Section, fetch, monitor_connection
from perf.monitor.models import IndexUsage
from perf.monitor.pages import Level, MonitorPageAdmin

# Rows are the planner's estimate (reltuples; -1 until the first VACUUM or ANALYZE, then the
# live-tuple count). The table's own size excludes its TOAST relation, which is shown apart.
TABLES_SQL = """
SELECT c.oid AS table_oid, n.nspname AS schema, c.relname AS table,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE coalesce(s.n_live_tup, 0) END AS rows,
       coalesce(s.n_dead_tup, 0) AS dead_rows,
       pg_table_size(c.oid) - coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast_bytes,
       pg_total_relation_size(c.oid) AS total_bytes,
       coalesce(s.seq_scan, 0) AS seq_scans,
       coalesce(s.idx_scan, 0) AS index_scans
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY pg_total_relation_size(c.oid) DESC, c.relname
"""

# One row per index. Key columns are compared as (definition, sort options, operator class,
# collation), which is what decides whether one index can stand in for another; the column
# texts come from pg_get_indexdef(oid, k) so expressions compare by their deparsed text.
# A constraint "backs" an index only for its own table (a foreign key's conindid points at the
# referenced table's index). pg_stat_progress_create_index tells a failed CREATE INDEX
# CONCURRENTLY from one still running.
INDEXES_SQL = """
SELECT i.indexrelid AS index_oid, t.oid AS table_oid, n.nspname AS schema, t.relname AS table,
       c.relname AS name, am.amname AS method,
       i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid,
       con.conname AS constraint_name,
       i.indnkeyatts AS key_count, i.indkey::int2[] AS attnums, i.indoption::int2[] AS options,
       i.indclass::oid[] AS opclasses, i.indcollation::oid[] AS collations,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnatts) AS k
             ORDER BY k) AS columns,
       pg_get_expr(i.indpred, i.indrelid, true) AS predicate,
       pg_get_indexdef(i.indexrelid) AS definition,
       pg_relation_size(i.indexrelid) AS size_bytes,
       coalesce(s.idx_scan, 0) AS scans,
       p.index_relid IS NOT NULL AS being_built
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = c.relam
LEFT JOIN pg_constraint con
       ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
LEFT JOIN pg_stat_progress_create_index p ON p.index_relid = i.indexrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY t.relname, c.relname
"""

# "Zero scans" means zero since this moment (NULL: never reset).
STATS_SQL = """
SELECT d.stats_reset, pg_database_size(current_database()) AS database_bytes, now() AS now
FROM pg_stat_database d WHERE d.datname = current_database()
"""

# Table bloat: the estimation query of Jehan-Guillaume de Rorthais (ioguix),
# https://github.com/ioguix/pgsql-bloat-estimation table/table_bloat.sql (BSD-2-Clause), cut
# to the columns shown here. It compares the pages a table has with the pages its live rows
# need, from pg_stats' average widths: an estimate (no pgstattuple, nothing read from the
# table), wrong for tables without statistics (is_na).
TABLE_BLOAT_SQL = """
SELECT tblid AS table_oid,
       CASE WHEN tblpages - est_tblpages_ff > 0 THEN (tblpages - est_tblpages_ff) * bs ELSE 0 END
           AS bloat_bytes,
       CASE WHEN tblpages > 0 AND tblpages - est_tblpages_ff > 0
            THEN 100 * (tblpages - est_tblpages_ff) / tblpages::float ELSE 0 END AS bloat_pct,
       is_na
FROM (
  SELECT ceil(reltuples / ((bs - page_hdr) * fillfactor / (tpl_size * 100))) + ceil(toasttuples / 4)
             AS est_tblpages_ff,
         tblpages, bs, tblid, is_na
  FROM (
    SELECT (4 + tpl_hdr_size + tpl_data_size + (2 * ma)
            - CASE WHEN tpl_hdr_size % ma = 0 THEN ma ELSE tpl_hdr_size % ma END
            - CASE WHEN ceil(tpl_data_size)::int % ma = 0 THEN ma ELSE ceil(tpl_data_size)::int % ma END
           ) AS tpl_size,
           (heappages + toastpages) AS tblpages, reltuples, toasttuples, bs, page_hdr, tblid,
           fillfactor, is_na
    FROM (
      SELECT tbl.oid AS tblid, tbl.reltuples, tbl.relpages AS heappages,
             coalesce(toast.relpages, 0) AS toastpages, coalesce(toast.reltuples, 0) AS toasttuples,
             coalesce(substring(array_to_string(tbl.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::smallint,
                      100) AS fillfactor,
             current_setting('block_size')::numeric AS bs,
             CASE WHEN version() ~ 'mingw32' OR version() ~ '64-bit|x86_64|ppc64|ia64|amd64' THEN 8 ELSE 4 END
                 AS ma,
             24 AS page_hdr,
             23 + CASE WHEN max(coalesce(s.null_frac, 0)) > 0 THEN (7 + count(s.attname)) / 8 ELSE 0::int END
                 AS tpl_hdr_size,
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS tpl_data_size,
             bool_or(att.atttypid = 'pg_catalog.name'::regtype)
                 OR sum(CASE WHEN att.attnum > 0 THEN 1 ELSE 0 END) <> count(s.attname) AS is_na
      FROM pg_attribute AS att
      JOIN pg_class AS tbl ON att.attrelid = tbl.oid
      JOIN pg_namespace AS n ON n.oid = tbl.relnamespace
      LEFT JOIN pg_stats AS s ON s.schemaname = n.nspname AND s.tablename = tbl.relname
                             AND s.inherited = false AND s.attname = att.attname
      LEFT JOIN pg_class AS toast ON tbl.reltoastrelid = toast.oid
      WHERE NOT att.attisdropped AND tbl.relkind IN ('r', 'm')
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
      GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ) AS s
  ) AS s2
) AS s3
"""

# B-tree index bloat: PgHero's index_bloat (https://github.com/ankane/pghero,
# lib/pghero/methods/indexes.rb, MIT; itself from Josh Berkus's and Michael Banck's gist),
# summed per table here. Same idea as above: leaf pages an index has against the pages its
# tuples need at their average width.
INDEX_BLOAT_SQL = """
WITH btree_index_atts AS (
  SELECT nspname, relname, reltuples, relpages, indrelid, relam,
         regexp_split_to_table(indkey::text, ' ')::smallint AS attnum, indexrelid AS index_oid
  FROM pg_index
  JOIN pg_class ON pg_class.oid = pg_index.indexrelid
  JOIN pg_namespace ON pg_namespace.oid = pg_class.relnamespace
  JOIN pg_am ON pg_class.relam = pg_am.oid
  WHERE pg_am.amname = 'btree' AND nspname NOT IN ('pg_catalog', 'information_schema')
),
index_item_sizes AS (
  SELECT i.nspname, i.relname, i.reltuples, i.relpages, i.relam, a.attrelid AS table_oid, index_oid,
         current_setting('block_size')::numeric AS bs,
         CASE WHEN version() ~ 'mingw32' OR version() ~ '64-bit' THEN 8 ELSE 4 END AS maxalign,
         24 AS pagehdr,
         CASE WHEN max(coalesce(s.null_frac, 0)) = 0 THEN 2 ELSE 6 END AS index_tuple_hdr,
         sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 2048)) AS nulldatawidth
  FROM pg_attribute AS a
  JOIN pg_stats AS s
    ON (quote_ident(s.schemaname) || '.' || quote_ident(s.tablename))::regclass = a.attrelid
   AND s.attname = a.attname
  JOIN btree_index_atts AS i ON i.indrelid = a.attrelid AND a.attnum = i.attnum
  WHERE a.attnum > 0
  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
),
index_aligned AS (
  SELECT maxalign, bs, nspname, relname AS index_name, reltuples, relpages, relam, table_oid, index_oid,
         (2 + maxalign - CASE WHEN index_tuple_hdr % maxalign = 0 THEN maxalign
                              ELSE index_tuple_hdr % maxalign END
            + nulldatawidth + maxalign - CASE WHEN nulldatawidth::integer % maxalign = 0 THEN maxalign
                                              ELSE nulldatawidth::integer % maxalign END
         )::numeric AS nulldatahdrwidth,
         pagehdr
  FROM index_item_sizes
),
otta_calc AS (
  SELECT bs, table_oid, index_oid, relpages,
         coalesce(ceil((reltuples * (4 + nulldatahdrwidth)) / (bs - pagehdr::float))
                  + CASE WHEN am.amname IN ('hash', 'btree') THEN 1 ELSE 0 END, 0) AS otta
  FROM index_aligned LEFT JOIN pg_am am ON index_aligned.relam = am.oid
)
SELECT index_oid, table_oid,
       CASE WHEN relpages <= otta THEN 0 ELSE bs * (relpages - otta)::bigint END AS bloat_bytes
FROM otta_calc
"""


# --- What the catalog says ---------------------------------------------------------------


def scan_share(table: dict[str, Any]) -> float | None:
    """Percent of the table's scans that used an index; None before any scan."""
    scans = table["seq_scans"] + table["index_scans"]
    return 100 * table["index_scans"] / scans if scans else None


def table_level(table: dict[str, Any]) -> Level:
    """Amber when a big table is mostly read by sequential scans (PERF_SEQ_SCAN_MIN_ROWS,
    PERF_INDEX_SCAN_MIN_PCT); grey before any scan; green otherwise."""
    share = scan_share(table)
    if share is None:
        return Level.UNKNOWN
    if table["rows"] > settings.PERF_SEQ_SCAN_MIN_ROWS and share < settings.PERF_INDEX_SCAN_MIN_PCT:
        return Level.WARNING
    return Level.OK


def _key(index: dict[str, Any]) -> list[tuple[str, int, int, int]]:
    """The key columns of an index as the planner distinguishes them."""
    count = index["key_count"]
    return list(
        zip(
            index["columns"][:count],
            index["options"][:count],
            index["opclasses"][:count],
            index["collations"][:count],
            strict=True,
        )
    )


def enforces_something(index: dict[str, Any]) -> bool:
    """Primary keys, unique indexes and constraint-backing indexes are needed whatever their scans."""
    return index["is_primary"] or index["is_unique"] or index["constraint_name"] is not None


def unused_indexes(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Valid indexes that enforce nothing and were never scanned since the statistics reset,
    biggest first."""
    unused = [
        index
        for index in indexes
        if index["is_valid"] and not enforces_something(index) and index["scans"] == 0
    ]
    return sorted(unused, key=lambda index: (-index["size_bytes"], index["table"], index["name"]))


def covers(wider: dict[str, Any], narrower: dict[str, Any]) -> bool:
    """Whether ``wider`` can do everything ``narrower`` does: same table, method, predicate and
    expressions, and ``narrower``'s key columns are ``wider``'s (a prefix of them, for a
    B-tree, whose leading columns alone serve a lookup); INCLUDE columns must be there too."""
    if (wider["table_oid"], wider["method"], wider["predicate"]) != (
        narrower["table_oid"],
        narrower["method"],
        narrower["predicate"],
    ):
        return False
    wide_key, narrow_key = _key(wider), _key(narrower)
    if narrower["method"] == "btree":
        if wide_key[: len(narrow_key)] != narrow_key:
            return False
    elif wide_key != narrow_key:
        return False
    included = narrower["columns"][narrower["key_count"] :]
    return set(included) <= set(wider["columns"])


def duplicate_indexes(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Indexes another valid index on the same table covers (see ``covers``), each with the
    covering index scanned most. Of two identical indexes, the one with the later name is the
    duplicate, so exactly one of them is listed; an index that enforces something is never
    the duplicate."""
    by_table: dict[int, list[dict[str, Any]]] = {}
    for index in indexes:
        if index["is_valid"]:
            by_table.setdefault(index["table_oid"], []).append(index)
    duplicates = []
    for siblings in by_table.values():
        for index in siblings:
            if enforces_something(index):
                continue
            covering = []
            for other in siblings:
                if other is index or not covers(other, index):
                    continue
                identical = _key(other) == _key(index) and other["columns"] == index["columns"]
                if identical and not enforces_something(other) and other["name"] > index["name"]:
                    continue  # the other one is listed as the duplicate of this one
                covering.append(other)
            if covering:
                # Name the covering index that already works most (then the smallest).
                best = max(covering, key=lambda other: (other["scans"], -other["size_bytes"]))
                duplicates.append({"index": index, "covered_by": best})
    return sorted(duplicates, key=lambda d: (d["index"]["table"], d["index"]["name"]))


def invalid_indexes(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Indexes PostgreSQL does not use (indisvalid = false): a CREATE INDEX CONCURRENTLY that
    failed (drop it and build it again) or one still being built (being_built)."""
    return [index for index in indexes if not index["is_valid"]]


def seq_scan_tables(tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tables flagged by ``table_level``."""
    return [table for table in tables if table_level(table) == Level.WARNING]


# --- What the models declare ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelIndex:
    """An index of a model's ``Meta.indexes`` and the comment above it in the source."""

    model: str  # "app_label.ModelName"
    table: str
    name: str
    comment: str
    declaration: str


def _meta_index_entries(klass: type) -> tuple[list[ast.expr], list[str]] | None:
    """The elements of ``class Meta: indexes = [...]`` in ``klass``'s own source (and the
    source lines), or None when it declares none or has no readable source."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source)
    if not tree.body or not isinstance(tree.body[0], ast.ClassDef):
        return None
    for node in tree.body[0].body:
        if not (isinstance(node, ast.ClassDef) and node.name == "Meta"):
            continue
        for statement in node.body:
            targets = statement.targets if isinstance(statement, ast.Assign) else []
            names_indexes = any(isinstance(t, ast.Name) and t.id == "indexes" for t in targets)
            if names_indexes and isinstance(statement.value, ast.List | ast.Tuple):
                return list(statement.value.elts), source.splitlines()
    return None


def _comments_by_line(source_lines: list[str]) -> dict[int, str]:
    """Line number -> text of each comment that stands alone on its line."""
    comments = {}
    tokens = tokenize.generate_tokens(io.StringIO("\n".join(source_lines) + "\n").readline)
    for token in tokens:
        if token.type == tokenize.COMMENT and not source_lines[token.start[0] - 1][: token.start[1]].strip():
            comments[token.start[0]] = token.string.lstrip("#").strip()
    return comments


def _declared_name(entry: ast.expr, model: type[models.Model]) -> str | None:
    """The literal ``name=`` of an index entry, interpolated the way Django does for indexes
    of abstract models (``%(app_label)s``, ``%(class)s``)."""
    if not isinstance(entry, ast.Call):
        return None
    for keyword in entry.keywords:
        value = keyword.value
        if keyword.arg == "name" and isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value % {"app_label": model._meta.app_label.lower(), "class": model.__name__.lower()}
    return None


def index_comments(model: type[models.Model]) -> dict[str, tuple[str, str]]:
    """Index name -> (comment, declaration source) for the model's ``Meta.indexes``, read from
    the class that declares them (the model, or the abstract parent whose Meta it inherits).
    The comment is the comment line(s) right above the entry."""
    for klass in model.__mro__:
        if not (isinstance(klass, type) and issubclass(klass, models.Model)) or klass is models.Model:
            continue
        found = _meta_index_entries(klass)
        if found is None:
            continue
        entries, lines = found
        comments = _comments_by_line(lines)
        declared = model._meta.indexes
        result = {}
        for position, entry in enumerate(entries):
            name = _declared_name(entry, model)
            if name is None and len(entries) == len(declared):
                name = declared[position].name  # a computed name: match by position
            if name is None:
                continue
            above, line = [], entry.lineno - 1
            while line in comments:
                above.insert(0, comments[line])
                line -= 1
            result[name] = (" ".join(above), ast.get_source_segment("\n".join(lines), entry) or "")
        return result
    return {}


@cache
def model_indexes() -> tuple[ModelIndex, ...]:
    """Every index declared in a model's ``Meta.indexes``, found through the app registry.
    Cached for the process: model sources do not change while it runs."""
    found = []
    for model in apps.get_models():
        opts = model._meta
        if opts.proxy or not opts.managed or not opts.indexes:
            continue
        comments = index_comments(model)
        for index in opts.indexes:
            comment, declaration = comments.get(index.name, ("", ""))
            found.append(ModelIndex(opts.label, opts.db_table, index.name, comment, declaration))
    return tuple(found)


@cache
def _declared_by_models() -> tuple[dict[str, str], dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """table -> model label; (table, index or constraint name) -> model label for what
    ``Meta.indexes`` and ``Meta.constraints`` declare; (table, column) -> model label for
    fields that carry their own index (primary key, unique, db_index, foreign keys)."""
    tables, names, columns = {}, {}, {}
    for model in apps.get_models(include_auto_created=True):
        opts = model._meta
        if opts.proxy or not opts.managed:
            continue
        tables[opts.db_table] = opts.label
        for declared in [*opts.indexes, *opts.constraints]:
            names[(opts.db_table, declared.name)] = opts.label
        for field in opts.local_concrete_fields:
            if field.primary_key or field.unique or field.db_index:
                columns[(opts.db_table, field.column)] = opts.label
    return tables, names, columns


@cache
def package_tables() -> frozenset[str]:
    """Tables whose indexes Django or an installed package made, not this project's models:
    the tables of packages' models (auth, sessions, admin...) and the automatic through tables
    of many-to-many fields (``User.groups``). Their indexes are shown but not counted as the
    project's problems, or the overview would stay amber for good over what nobody here owns."""
    base = str(settings.BASE_DIR)
    tables = set()
    for model in apps.get_models(include_auto_created=True):
        path = model._meta.app_config.path
        if model._meta.auto_created or not path.startswith(base) or "site-packages" in path:
            tables.add(model._meta.db_table)
    return frozenset(tables)


def ours(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (indexes, or duplicate pairs) that are not on a package's table."""
    packaged = package_tables()
    return [row for row in rows if row.get("index", row)["table"] not in packaged]


def undeclared_indexes(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Database indexes no model declares: not in any ``Meta.indexes`` or ``Meta.constraints``,
    not a primary key or constraint, not the single-column index of an indexed field (Django
    names those with a hash, and adds a ``_like`` twin for text: matched by column instead)."""
    tables, names, columns = _declared_by_models()
    undeclared = []
    for index in indexes:
        table = index["table"]
        if (table, index["name"]) in names or index["is_primary"] or index["constraint_name"]:
            continue
        plain_single = index["key_count"] == 1 and index["attnums"][0] != 0 and index["predicate"] is None
        if plain_single and len(index["columns"]) == 1 and (table, index["columns"][0]) in columns:
            continue
        undeclared.append({**index, "model": tables.get(table)})
    return undeclared


def model_index_rows(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each model index with its comment and what the database says about it."""
    by_name = {(index["table"], index["name"]): index for index in indexes}
    rows = []
    for declared in model_indexes():
        index = by_name.get((declared.table, declared.name))
        if index is None:
            level, state = Level.CRITICAL, "not in the database"
        elif not index["is_valid"]:
            level, state = Level.CRITICAL, "invalid"
        elif index["scans"] == 0:
            level, state = Level.WARNING, "never scanned"
        else:
            level, state = Level.OK, "used"
        rows.append({"declared": declared, "index": index, "level": level, "state": state})
    return rows


# --- The page and the overview's summary ---------------------------------------------------


@dataclass
class Catalog:
    tables: Section
    indexes: Section
    stats: Section


def read_catalog(conn: psycopg.Connection | None) -> Catalog:
    """The three reads every use of this page needs (the bloat estimates come on top)."""
    return Catalog(
        tables=fetch(conn, TABLES_SQL), indexes=fetch(conn, INDEXES_SQL), stats=fetch(conn, STATS_SQL)
    )


def _problem(
    items: list | None, error: str | None, *, level: Level, noun: tuple[str, str], detail: str = ""
) -> dict[str, Any]:
    """One entry of ``index_problems``: the project's items counted, Django's own mentioned."""
    if items is None:
        return {"count": None, "level": Level.UNKNOWN, "summary": error or "not measured"}
    counted = ours(items)
    summary = f"{len(counted)} {noun[0] if len(counted) == 1 else noun[1]}{detail}"
    if len(items) > len(counted):
        summary += f" (and {len(items) - len(counted)} on Django's own tables, not counted)"
    return {"count": len(counted), "level": level if counted else Level.OK, "summary": summary}


def index_problems() -> dict[str, Any]:
    """The overview's summary of this page, from one short read of the catalogs.

    Returns ``{"unused", "duplicate", "invalid", "seq_scan_tables"}``, each a dict with
    ``count`` (int, or None when it could not be measured), ``level`` (a ``Level``: amber for
    unused, duplicate and seq-scan tables, red for an invalid index that is not being built,
    green for none, grey when unmeasured) and ``summary`` (a short sentence; "unused" also has
    ``bytes``, their total size); plus ``stats_reset`` (datetime or None: since when the scan
    counts run), ``error`` (the first section error, or None) and ``url`` (this page). Indexes
    Django made on its own tables (``package_tables``) are left out of the counts and named in
    the summary. Suggestions are not run here: they need the page's EXPLAINs.
    """
    with monitor_connection() as conn:
        catalog = read_catalog(conn)
    return problems(catalog)


def problems(catalog: Catalog) -> dict[str, Any]:
    """``index_problems`` from catalog reads already made (the page shows the same)."""
    tables = catalog.tables.rows if catalog.tables.ok else None
    indexes = catalog.indexes.rows if catalog.indexes.ok else None
    unused = unused_indexes(indexes) if indexes is not None else None
    invalid = invalid_indexes(indexes) if indexes is not None else None
    building = [index for index in ours(invalid or []) if index["being_built"]]
    return {
        "unused": {
            **_problem(
                unused,
                catalog.indexes.error,
                level=Level.WARNING,
                noun=("never-scanned index", "never-scanned indexes"),
            ),
            "bytes": sum(index["size_bytes"] for index in ours(unused or [])),
        },
        "duplicate": _problem(
            duplicate_indexes(indexes) if indexes is not None else None,
            catalog.indexes.error,
            level=Level.WARNING,
            noun=("index covered by another", "indexes covered by another"),
        ),
        "invalid": _problem(
            invalid,
            catalog.indexes.error,
            level=Level.CRITICAL if len(ours(invalid or [])) > len(building) else Level.OK,
            noun=("invalid index", "invalid indexes"),
            detail=f" ({len(building)} being built)" if building else "",
        ),
        "seq_scan_tables": _problem(
            seq_scan_tables(tables) if tables is not None else None,
            catalog.tables.error,
            level=Level.WARNING,
            noun=("table", "tables"),
            detail=(
                f" over {settings.PERF_SEQ_SCAN_MIN_ROWS:,} rows with under "
                f"{settings.PERF_INDEX_SCAN_MIN_PCT} % index scans"
            ),
        ),
        "stats_reset": catalog.stats.first().get("stats_reset"),
        "error": catalog.tables.error or catalog.indexes.error or catalog.stats.error,
        "url": reverse("admin:perf_indexusage_changelist"),
    }


def stats_since(stats: dict[str, Any]) -> str:
    """Since when the scan counts run, for people."""
    reset = stats.get("stats_reset")
    if reset is None:
        return "the statistics began (never reset)" if stats else "unknown"
    return f"{reset:%Y-%m-%d %H:%M %Z} ({timesince(reset, now=stats['now'])} ago)"


def table_rows(catalog: Catalog, table_bloat: Section, index_bloat: Section) -> list[dict[str, Any]]:
    """The tables with their scan share, level and bloat estimates (None when unmeasured)."""
    bloat = {row["table_oid"]: row for row in table_bloat.rows}
    index_waste: dict[int, int] = {}
    for row in index_bloat.rows:
        index_waste[row["table_oid"]] = index_waste.get(row["table_oid"], 0) + int(row["bloat_bytes"])
    rows = []
    for table in catalog.tables.rows:
        estimate = bloat.get(table["table_oid"])
        rows.append(
            {
                **table,
                "share": scan_share(table),
                "level": table_level(table),
                "bloat_bytes": int(estimate["bloat_bytes"]) if estimate and not estimate["is_na"] else None,
                "bloat_pct": estimate["bloat_pct"] if estimate and not estimate["is_na"] else None,
                "index_bloat_bytes": index_waste.get(table["table_oid"]) if index_bloat.ok else None,
            }
        )
    for row in rows:
        share, pct = row["share"], row["bloat_pct"]
        row["rows_display"] = nice(row["rows"])
        row["dead_display"] = nice(row["dead_rows"])
        row["seq_display"] = nice(row["seq_scans"])
        row["index_display"] = nice(row["index_scans"])
        row["share_display"] = "no scans yet" if share is None else f"{nice(share)} %"
        row["bloat_pct_display"] = "" if pct is None else f"{nice(pct)} %"
    return rows


@admin.register(IndexUsage)
class IndexUsageAdmin(MonitorPageAdmin):
    template_name = "admin/perf/monitor/indexes.html"
    order = 40

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        with monitor_connection() as conn:
            catalog = read_catalog(conn)
            table_bloat = fetch(conn, TABLE_BLOAT_SQL)
            index_bloat = fetch(conn, INDEX_BLOAT_SQL)
            suggested = suggestions.suggest_indexes(
                conn, catalog.indexes.rows if catalog.indexes.ok else [], models=models_by_table()
            )
        packaged = package_tables()
        indexes = [{**index, "packaged": index["table"] in packaged} for index in catalog.indexes.rows]
        invalid = invalid_indexes(indexes)
        unused = unused_indexes(indexes)
        duplicates = duplicate_indexes(indexes)
        flagged = seq_scan_tables(catalog.tables.rows)
        return {
            "problems": problems(catalog),
            "catalog": catalog,
            "stats": catalog.stats.first(),
            "stats_since": stats_since(catalog.stats.first()),
            "tables": table_rows(catalog, table_bloat, index_bloat),
            "seq_scan_tables": flagged,
            "table_bloat": table_bloat,
            "index_bloat": index_bloat,
            "unused": unused,
            "duplicates": duplicates,
            "invalid": invalid,
            "model_indexes": model_index_rows(indexes) if catalog.indexes.ok else [],
            "undeclared": undeclared_indexes(indexes),
            "suggested": suggested,
            "suggested_ms": nice(suggested.elapsed_ms),
            "max_candidates": suggestions.MAX_CANDIDATES,
            "max_queries": suggestions.MAX_QUERIES_PER_CANDIDATE,
            "min_saving_pct": suggestions.MIN_SAVING_PCT,
            "seq_scan_min_rows": nice(settings.PERF_SEQ_SCAN_MIN_ROWS),
            "index_scan_min_pct": settings.PERF_INDEX_SCAN_MIN_PCT,
            "statement_timeout_ms": settings.PERF_STATEMENT_TIMEOUT_MS,
        }


def models_by_table() -> dict[str, suggestions.TableModel]:
    """Each model's table, with its fields by column: a suggestion is also written as the
    ``models.Index`` line STYLE.md asks for."""
    return {
        model._meta.db_table: suggestions.TableModel(
            label=model._meta.label,
            model_name=model._meta.model_name,
            fields={field.column: field.name for field in model._meta.concrete_fields},
        )
        for model in apps.get_models()
        if model._meta.managed and not model._meta.proxy
    }

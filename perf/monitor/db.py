"""The monitor's own PostgreSQL connection: short statement timeout, named in pg_stat_activity.

A page opens one connection (``monitor_connection()``) and runs each of its sections through
``fetch()``: a section whose query times out (``PERF_STATEMENT_TIMEOUT_MS``) or fails comes
back with ``error`` set and no rows, and the page still renders the others. The connection is
not the request's pooled one: a slow catalog query cannot hold a connection the API needs, and
the API's transaction never sees the monitor's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg.rows import dict_row

logger = logging.getLogger("bountyexpo.monitor")

# The monitor's sessions in pg_stat_activity; the live-queries page leaves them out.
APPLICATION_NAME = "bountyexpo-monitor"


@dataclass
class Section:
    """The rows of one query of a page, or why there are none."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def first(self) -> dict[str, Any]:
        return self.rows[0] if self.rows else {}


def connection_params() -> dict[str, Any]:
    """PostgreSQL's own parameters (the ``direct`` alias of DATABASE_DIRECT_URL when set, as it
    must be behind PgBouncer, else the default database; the test database in tests), with the
    monitor's own statement timeout and application name."""
    alias = "direct" if "direct" in settings.DATABASES else DEFAULT_DB_ALIAS
    params = connections[alias].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    params.update(
        options=f"-c statement_timeout={settings.PERF_STATEMENT_TIMEOUT_MS}",
        application_name=APPLICATION_NAME,
        connect_timeout=max(1, settings.PERF_STATEMENT_TIMEOUT_MS // 1000),
        autocommit=True,
    )
    return params


@contextmanager
def monitor_connection() -> Iterator[psycopg.Connection | None]:
    """A connection for one page; None when PostgreSQL cannot be reached (each ``fetch`` on it
    then reports that, and the page still renders)."""
    try:
        conn = psycopg.connect(**connection_params())
    except psycopg.Error as exc:
        logger.warning("monitor cannot connect to PostgreSQL: %s", exc)
        yield None
        return
    try:
        yield conn
    finally:
        conn.close()


def fetch(conn: psycopg.Connection | None, sql: str, params: Sequence[Any] | dict | None = None) -> Section:
    """Run one read of a page. Never raises for a database error: the section carries it."""
    if conn is None:
        return Section(error="PostgreSQL is unreachable.")
    try:
        with conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql, params)
            return Section(rows=list(cursor.fetchall()) if cursor.description else [])
    except psycopg.errors.QueryCanceled:
        return Section(
            error=f"Timed out after {settings.PERF_STATEMENT_TIMEOUT_MS} ms (PERF_STATEMENT_TIMEOUT_MS)."
        )
    except psycopg.Error as exc:
        logger.warning("monitor query failed: %s", exc)
        return Section(error=f"{type(exc).__name__}: {str(exc).strip()}")

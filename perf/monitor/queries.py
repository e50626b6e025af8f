"""The Queries page: which statements cost this database the most, over a chosen window.

pg_stat_statements only counts up (calls, execution time, rows, buffers per normalised
statement) from its last reset, so "the last hour" is a difference between two readings. The
monitor stores readings as snapshots (models ``Statement``, ``StatementSnapshot``,
``StatementDelta``): a snapshot keeps, per statement that ran since the previous snapshot, what it
did in between; ``Statement`` holds each text once and the cumulative counters of the newest
snapshot. A window (last 5 min / 1 h / 24 h) is the sum of the increments of the snapshots after
the one nearest its start, plus what ran since the newest snapshot (the live counters minus that
snapshot's), so it always ends now; "since reset" is the live counters themselves.

Resets: every increment is computed between two consecutive readings, and a counter that went
down (this database reset, or the entry evicted and added again) counts from zero, so a window
spanning a reset adds up both sides; only the calls between the last snapshot before a reset and
the reset are lost, and the page says when a reset fell inside the window. A change of
``pg_stat_statements_info.stats_reset`` (everything reset) restarts every statement from zero.
The page's own reset takes a snapshot just before and just after, so it loses nothing.

Snapshots come from ``manage.py perf_snapshot`` (cron, every 5 min), and from the page itself
when the newest is older than PERF_SNAPSHOT_MAX_AGE_SECONDS. ``perf_snapshot`` also prunes:
snapshots older than PERF_SNAPSHOT_RETENTION_DAYS go, and those older than 2 h are merged into
one per hour: the 5 min and 1 h windows keep 5-minute steps, the 24 h window starts within half
an hour of its mark, and a window sums at most about 50 snapshots whatever its length.

EXPLAIN (never ANALYZE) for one statement, with literal values typed by staff for its
``$1, $2...``: a single SELECT or WITH statement only, planned on the monitor's connection in a
read-only transaction that is rolled back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from django.conf import settings
from django.contrib import admin, messages
from django.db import DatabaseError, connection, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import re_path, reverse
from django.utils.http import urlencode

from perf.monitor.charts import nice
from perf.monitor.db import APPLICATION_NAME, Section, fetch, monitor_connection
from perf.monitor.models import QueryStats, Statement, StatementDelta, StatementSnapshot
from perf.monitor.pages import Level, MonitorPageAdmin

# A monitor connection; None when PostgreSQL could not be reached (every read then says so).
Connection = psycopg.Connection | None

# Leading comment: pg_stat_statements keeps it in the statement's text, so the monitor's own
# statements can be told apart (and left out) on this page.
MARK = f"/* {APPLICATION_NAME} */ "
NONE = "\N{EN DASH}"  # an empty cell

# The monitor's own work, as pg_stat_statements records it: statements carrying MARK, the writes
# of the snapshot tables, and reads of the statistics catalogs (the other monitor pages and the
# load-test sampler read them; the API never does).
_MONITOR_TEXT = re.compile(
    r"bountyexpo-monitor|\bperf_statement|\bpg_stat_\w+|\bpg_statio_\w+|\bpg_locks\b|\bpg_class\b"
    r"|\bpg_index(es)?\b|\bpg_settings\b|\bpg_database\b|\bhypopg\w*|\bpg_qualstats\w*"
    r"|\bpg_(cancel|terminate)_backend\b|\bpg_blocking_pids\b",
    re.IGNORECASE,
)

WINDOWS: dict[str, tuple[str, int | None]] = {
    "5m": ("Last 5 min", 300),
    "1h": ("Last hour", 3600),
    "24h": ("Last 24 h", 86_400),
    "reset": ("Since reset", None),
}
DEFAULT_WINDOW = "1h"
ORDERS = {"total": "Total time", "mean": "Mean time", "calls": "Calls"}
TOP = 25
# Older snapshots are merged into one per hour. The 5 min and 1 h windows need 5-minute steps
# (an hour of slack included); the 24 h window is fine with hourly ones, and summing 24 of them
# instead of 288 is what keeps it within the page's time budget with 10,000 busy statements.
FULL_RESOLUTION = timedelta(hours=2)
# The overview's slow-query check is red when slow statements take this share of the database's
# execution time: the database then spends most of its time on them.
SLOW_SHARE_CRITICAL_PCT = 50
# pg_try_advisory_xact_lock key: one snapshot (or prune) at a time, server-wide for this database.
_LOCK_KEY = 0x62782D7065726600  # "bx-perf\0"


def is_monitor_text(query: str) -> bool:
    return bool(_MONITOR_TEXT.search(query))


# --- counters ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counters:
    """pg_stat_statements' counters of one statement (summed over roles), cumulative or an
    increment. The mean time is total / calls, over whatever span the counters cover."""

    calls: int = 0
    total_exec_time: float = 0.0  # milliseconds
    rows: int = 0
    shared_blks_hit: int = 0
    shared_blks_read: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.calls + other.calls,
            self.total_exec_time + other.total_exec_time,
            self.rows + other.rows,
            self.shared_blks_hit + other.shared_blks_hit,
            self.shared_blks_read + other.shared_blks_read,
        )

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.calls - other.calls,
            self.total_exec_time - other.total_exec_time,
            self.rows - other.rows,
            self.shared_blks_hit - other.shared_blks_hit,
            self.shared_blks_read - other.shared_blks_read,
        )

    @property
    def mean_ms(self) -> float:
        return self.total_exec_time / self.calls if self.calls else 0.0

    @property
    def hit_pct(self) -> float | None:
        blocks = self.shared_blks_hit + self.shared_blks_read
        return 100 * self.shared_blks_hit / blocks if blocks else None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def of(cls, row: dict[str, Any]) -> Counters:
        return cls(
            int(row["calls"]),
            float(row["total_exec_time"]),
            int(row["rows"]),
            int(row["shared_blks_hit"]),
            int(row["shared_blks_read"]),
        )


ZERO = Counters()


def increment(before: Counters | None, now: Counters) -> Counters:
    """What a statement did between two readings of its cumulative counters.

    Counters that went down mean its entry was reset, or evicted and added again, in between:
    all it counts now happened since, so all of it belongs to the interval (what ran between the
    earlier reading and the reset is lost; nothing records it)."""
    if before is None or now.calls < before.calls or now.total_exec_time < before.total_exec_time:
        return now
    return now - before


# --- reading pg_stat_statements ----------------------------------------------------------------

_INFO_SQL = (
    MARK + "SELECT clock_timestamp() AS at, i.stats_reset, i.dealloc, d.oid::bigint AS dbid, d.datname "
    "FROM pg_stat_statements_info i, pg_database d WHERE d.datname = current_database()"
)
# pg_stat_statements(false): without texts, which live in a file the server reads in full.
_COUNTERS_SQL = (
    MARK
    + """
SELECT queryid, sum(calls)::bigint AS calls, sum(total_exec_time) AS total_exec_time,
       sum(rows)::bigint AS rows, sum(shared_blks_hit)::bigint AS shared_blks_hit,
       sum(shared_blks_read)::bigint AS shared_blks_read
FROM pg_stat_statements(false)
WHERE dbid = %(dbid)s AND queryid IS NOT NULL
GROUP BY queryid
"""
)
_TEXTS_SQL = (
    MARK
    + """
SELECT queryid, min(query) AS query FROM pg_stat_statements(true)
WHERE dbid = %(dbid)s AND queryid = ANY(%(ids)s)
GROUP BY queryid
"""
)


class MonitorError(Exception):
    """A read or write of the snapshots failed; the message says which and why."""


@dataclass
class Reading:
    """The live counters of every statement of this database."""

    at: datetime
    stats_reset: datetime
    dealloc: int
    dbid: int
    database: str
    counters: dict[int, Counters]


def _rows(section: Section, what: str) -> list[dict[str, Any]]:
    if not section.ok:
        raise MonitorError(f"{what}: {section.error}")
    return section.rows


def read_now(conn: Connection) -> Reading:
    info = _rows(fetch(conn, _INFO_SQL), "Reading pg_stat_statements_info")
    if not info:
        raise MonitorError("pg_stat_statements_info is empty: is pg_stat_statements installed?")
    dbid = info[0]["dbid"]
    rows = _rows(fetch(conn, _COUNTERS_SQL, {"dbid": dbid}), "Reading pg_stat_statements")
    return Reading(
        at=info[0]["at"],
        stats_reset=info[0]["stats_reset"],
        dealloc=info[0]["dealloc"],
        dbid=dbid,
        database=info[0]["datname"],
        counters={row["queryid"]: Counters.of(row) for row in rows},
    )


def read_texts(conn: Connection, reading: Reading, ids: Iterable[int]) -> dict[int, str]:
    wanted = list(ids)
    if not wanted:
        return {}
    rows = _rows(fetch(conn, _TEXTS_SQL, {"dbid": reading.dbid, "ids": wanted}), "Reading statement texts")
    return {row["queryid"]: row["query"] for row in rows}


@dataclass
class Known:
    """The Statement table: cumulative counters as of the newest snapshot, and which are the
    monitor's own."""

    counters: dict[int, Counters]
    monitor: set[int]


def read_known(conn: Connection) -> Known:
    table = Statement._meta.db_table
    rows = _rows(
        fetch(
            conn,
            f"{MARK}SELECT queryid, monitor, calls, total_exec_time, rows, shared_blks_hit, "  # noqa: S608 (model metadata)
            f"shared_blks_read FROM {table}",
        ),
        "Reading the stored statements",
    )
    return Known(
        counters={row["queryid"]: Counters.of(row) for row in rows},
        monitor={row["queryid"] for row in rows if row["monitor"]},
    )


_SNAPSHOT_COLUMNS = "id, taken_at, stats_reset, database_reset_at, dealloc"


def newest_snapshot(conn: Connection) -> dict[str, Any] | None:
    table = StatementSnapshot._meta.db_table
    rows = _rows(
        fetch(
            conn,
            f"{MARK}SELECT {_SNAPSHOT_COLUMNS}, "  # noqa: S608 (model metadata)
            f"extract(epoch FROM clock_timestamp() - taken_at)::float8 AS age_s "
            f"FROM {table} ORDER BY id DESC LIMIT 1",
        ),
        "Reading the newest snapshot",
    )
    return rows[0] if rows else None


# --- taking and pruning snapshots --------------------------------------------------------------


@dataclass
class SnapshotTaken:
    """What ``take_snapshot`` stored."""

    snapshot_id: int
    taken_at: datetime
    database: str
    statements: int  # statements of this database in pg_stat_statements
    ran: int  # statements that ran since the previous snapshot (increment rows stored)
    new: int  # statements seen for the first time (texts stored)
    previous_at: datetime | None  # None: the first snapshot, increments start with the next
    restarted: bool  # stats_reset changed since the previous snapshot

    def describe(self) -> str:
        if self.previous_at is None:
            since = "first snapshot: windows start from here"
        else:
            before = span(self.taken_at - self.previous_at)
            since = f"{self.ran} ran since the previous snapshot ({before} before)"
        restarted = "; pg_stat_statements was reset in between" if self.restarted else ""
        return (
            f"Snapshot {self.snapshot_id} of {self.database} at {self.taken_at:%Y-%m-%d %H:%M:%S %Z}: "
            f"{counted(self.statements, 'statement')}, {since}, {counted(self.new, 'new text')} "
            f"stored{restarted}."
        )


def _lock(cursor, *, wait: bool) -> bool:
    if wait:
        cursor.execute(f"{MARK}SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        return True
    cursor.execute(f"{MARK}SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_KEY])
    return bool(cursor.fetchone()[0])


def take_snapshot(
    conn,
    *,
    max_age_seconds: float | None = None,
    timeout_ms: int | None = None,
    database_reset_at: datetime | None = None,
    wait: bool = False,
) -> SnapshotTaken | None:
    """Read pg_stat_statements for this database and store what each statement did since the
    previous snapshot.

    ``conn`` is a monitor connection (the reads); the writes go through the ORM in one
    transaction, under an advisory lock so that two page views never store the same interval
    twice. Returns None when another process holds the lock (it is taking one) unless ``wait``,
    or when the newest snapshot is younger than ``max_age_seconds``. ``timeout_ms`` bounds the
    writes' statements too (a page's budget); ``database_reset_at`` marks the snapshot taken just
    after this database's statistics were reset. Raises MonitorError."""
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                if timeout_ms:
                    # SET, not set_config(): Django's connection setup calls set_config too, and
                    # pg_stat_statements would file both under one statement.
                    cursor.execute(f"{MARK}SET LOCAL statement_timeout = {int(timeout_ms)}")
                if not _lock(cursor, wait=wait):
                    return None
            previous = newest_snapshot(conn)
            if max_age_seconds is not None and previous and previous["age_s"] < max_age_seconds:
                return None
            return _store(conn, previous, database_reset_at)
    except DatabaseError as exc:
        raise MonitorError(f"The snapshot was not stored: {str(exc).strip()}") from exc


def _store(
    conn: Connection, previous: dict[str, Any] | None, database_reset_at: datetime | None
) -> SnapshotTaken:
    reading = read_now(conn)
    known = read_known(conn)
    restarted = previous is not None and previous["stats_reset"] != reading.stats_reset
    new_ids = reading.counters.keys() - known.counters.keys()
    texts = read_texts(conn, reading, new_ids)

    snapshot = StatementSnapshot.objects.create(
        taken_at=reading.at,
        stats_reset=reading.stats_reset,
        database_reset_at=database_reset_at or (previous["database_reset_at"] if previous else None),
        dealloc=reading.dealloc,
        statements=len(reading.counters),
    )
    increments = {}
    if previous is not None:
        for queryid, now in reading.counters.items():
            done = increment(None if restarted else known.counters.get(queryid), now)
            if done.calls > 0:
                increments[queryid] = done
    StatementDelta.objects.bulk_create(
        [
            StatementDelta(snapshot=snapshot, queryid=queryid, **done.as_dict())
            for queryid, done in increments.items()
        ],
        batch_size=2000,
    )
    # An entry evicted between two reads has no text any more: it is stored on its return.
    Statement.objects.bulk_create(
        [
            Statement(
                queryid=queryid,
                query=texts[queryid],
                monitor=is_monitor_text(texts[queryid]),
                first_seen=reading.at,
                **reading.counters[queryid].as_dict(),
            )
            for queryid in new_ids
            if queryid in texts
        ],
        batch_size=1000,
    )
    # The base of the next increments: the new counters, and zero for statements that left
    # pg_stat_statements (reset or evicted), so that their return counts from zero.
    changed = {
        queryid: now
        for queryid, now in reading.counters.items()
        if queryid in known.counters and known.counters[queryid] != now
    }
    changed.update(
        (queryid, ZERO)
        for queryid, before in known.counters.items()
        if queryid not in reading.counters and before != ZERO
    )
    _update_counters(changed)
    return SnapshotTaken(
        snapshot_id=snapshot.pk,
        taken_at=reading.at,
        database=reading.database,
        statements=len(reading.counters),
        ran=len(increments),
        new=sum(1 for queryid in new_ids if queryid in texts),
        previous_at=previous["taken_at"] if previous else None,
        restarted=restarted,
    )


def _update_counters(changed: dict[int, Counters]) -> None:
    if not changed:
        return
    columns = [f.name for f in fields(Counters)]
    values = [list(changed)] + [
        [getattr(counters, name) for counters in changed.values()] for name in columns
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Statement._meta.db_table} AS s SET "  # noqa: S608 (model metadata)
            + ", ".join(f"{name} = v.{name}" for name in columns)
            + " FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::bigint[], %s::bigint[], "
            "%s::bigint[]) "
            f"AS v(queryid, {', '.join(columns)}) WHERE s.queryid = v.queryid",
            values,
        )


@dataclass
class Pruned:
    deleted: int  # snapshots older than the retention
    merged: int  # snapshots older than FULL_RESOLUTION merged into their hour's last one
    texts: int  # statements gone from pg_stat_statements and from every kept snapshot

    def describe(self, retention_days: int) -> str:
        return (
            f"Pruned {counted(self.deleted, 'snapshot')} older than {retention_days} days, merged "
            f"{self.merged} older than {span(FULL_RESOLUTION)} into hourly ones, removed "
            f"{counted(self.texts, 'statement text')} no longer needed."
        )


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def prune_snapshots(*, retention_days: int, now: datetime) -> Pruned:
    """Delete snapshots older than ``retention_days``, and merge those older than
    FULL_RESOLUTION into the last snapshot of their hour (increments add up, so the merged
    snapshot then covers its whole hour exactly); statements no longer needed go too. The newest
    snapshot always stays: the next one's increments are measured from it."""
    snapshots = StatementSnapshot._meta.db_table
    deltas = StatementDelta._meta.db_table
    statements = Statement._meta.db_table
    columns = [f.name for f in fields(Counters)]
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor, wait=True)
        old = f"taken_at < %s AND id <> (SELECT max(id) FROM {snapshots})"  # noqa: S608 (model metadata)
        cursor.execute(
            f"{MARK}DELETE FROM {deltas} WHERE snapshot_id IN (SELECT id FROM {snapshots} WHERE {old})",  # noqa: S608 (model metadata)
            [now - timedelta(days=retention_days)],
        )
        cursor.execute(f"{MARK}DELETE FROM {snapshots} WHERE {old}", [now - timedelta(days=retention_days)])  # noqa: S608
        deleted = cursor.rowcount

        cursor.execute(
            f"{MARK}SELECT id, date_trunc('hour', taken_at) FROM {snapshots} WHERE {old} ORDER BY id",  # noqa: S608
            [now - FULL_RESOLUTION],
        )
        by_hour: dict[datetime, list[int]] = {}
        for snapshot_id, hour in cursor.fetchall():
            by_hour.setdefault(hour, []).append(snapshot_id)
        merged = [snapshot_id for ids in by_hour.values() for snapshot_id in ids[:-1]]
        into = [ids[-1] for ids in by_hour.values() for _ in ids[:-1]]
        if merged:
            cursor.execute(
                f"{MARK}INSERT INTO {deltas} (snapshot_id, queryid, {', '.join(columns)}) "  # noqa: S608
                f"SELECT m.into_id, d.queryid, {', '.join(f'sum(d.{name})' for name in columns)} "
                f"FROM {deltas} d JOIN unnest(%s::int[], %s::int[]) AS m(merged_id, into_id) "
                "ON d.snapshot_id = m.merged_id GROUP BY m.into_id, d.queryid "
                "ON CONFLICT (snapshot_id, queryid) DO UPDATE SET "
                + ", ".join(f"{name} = {deltas}.{name} + excluded.{name}" for name in columns),
                [merged, into],
            )
            cursor.execute(f"{MARK}DELETE FROM {deltas} WHERE snapshot_id = ANY(%s)", [merged])  # noqa: S608
            cursor.execute(f"{MARK}DELETE FROM {snapshots} WHERE id = ANY(%s)", [merged])  # noqa: S608
        cursor.execute(
            f"{MARK}DELETE FROM {statements} s WHERE s.calls = 0 "  # noqa: S608
            f"AND NOT EXISTS (SELECT 1 FROM {deltas} d WHERE d.queryid = s.queryid)"
        )
        texts = cursor.rowcount
    return Pruned(deleted=deleted, merged=len(merged), texts=texts)


def ensure_fresh_snapshot(conn: Connection) -> str | None:
    """Take a snapshot when there is none or the newest is older than
    PERF_SNAPSHOT_MAX_AGE_SECONDS (cron normally keeps them fresh); why it failed, if it did."""
    try:
        newest = newest_snapshot(conn)
        if newest and newest["age_s"] < settings.PERF_SNAPSHOT_MAX_AGE_SECONDS:
            return None
        take_snapshot(
            conn,
            max_age_seconds=settings.PERF_SNAPSHOT_MAX_AGE_SECONDS,
            timeout_ms=settings.PERF_STATEMENT_TIMEOUT_MS,
        )
    except MonitorError as exc:
        return str(exc)
    return None


# --- windows -----------------------------------------------------------------------------------


@dataclass
class Window:
    """What each statement did over a window, the monitor's own statements left out."""

    seconds: int | None  # asked for; None: since the last reset
    start: datetime | None = None  # what the figures actually cover
    end: datetime | None = None
    totals: dict[int, Counters] | None = None
    texts: dict[int, str] | None = None  # statements newer than the newest snapshot
    reset_inside: datetime | None = None
    evictions: int = 0  # pg_stat_statements entries evicted (server-wide) during the window
    # No snapshot reaches back to the asked start yet: the window is shorter than asked.
    truncated: bool = False
    error: str | None = None

    @property
    def total_ms(self) -> float:
        return sum(done.total_exec_time for done in (self.totals or {}).values())

    @property
    def calls(self) -> int:
        return sum(done.calls for done in (self.totals or {}).values())

    @property
    def covered(self) -> timedelta | None:
        return self.end - self.start if self.start and self.end else None

    def slow(self) -> dict[int, Counters]:
        return {
            queryid: done
            for queryid, done in (self.totals or {}).items()
            if done.mean_ms > settings.PERF_SLOW_QUERY_MS
        }

    def top(self, order: str, count: int = TOP) -> list[tuple[int, Counters]]:
        key = {
            "total": lambda item: item[1].total_exec_time,
            "mean": lambda item: item[1].mean_ms,
            "calls": lambda item: item[1].calls,
        }[order]
        return sorted((self.totals or {}).items(), key=key, reverse=True)[:count]


def nearest_snapshot(conn: Connection, at: datetime) -> tuple[dict[str, Any] | None, bool]:
    """The snapshot nearest ``at``, on either side (two index probes), and whether none is as
    old as ``at``."""
    table = StatementSnapshot._meta.db_table
    rows = _rows(
        fetch(
            conn,
            f"{MARK}(SELECT {_SNAPSHOT_COLUMNS} FROM {table} WHERE taken_at <= %(at)s "  # noqa: S608 (model metadata)
            "ORDER BY taken_at DESC LIMIT 1) UNION ALL "
            f"(SELECT {_SNAPSHOT_COLUMNS} FROM {table} WHERE taken_at > %(at)s ORDER BY taken_at LIMIT 1)",
            {"at": at},
        ),
        "Finding the window's first snapshot",
    )
    nearest = min(rows, key=lambda row: abs(row["taken_at"] - at), default=None)
    return nearest, not any(row["taken_at"] <= at for row in rows)


def stored_increments(conn: Connection, after_snapshot_id: int) -> dict[int, Counters]:
    """Per statement, the sum of the increments of every snapshot after the given one."""
    table = StatementDelta._meta.db_table
    rows = _rows(
        fetch(
            conn,
            f"{MARK}SELECT queryid, sum(calls)::bigint AS calls, sum(total_exec_time) AS total_exec_time, "  # noqa: S608
            "sum(rows)::bigint AS rows, sum(shared_blks_hit)::bigint AS shared_blks_hit, "
            f"sum(shared_blks_read)::bigint AS shared_blks_read FROM {table} "
            "WHERE snapshot_id > %s GROUP BY queryid",
            [after_snapshot_id],
        ),
        "Adding up the snapshots",
    )
    return {row["queryid"]: Counters.of(row) for row in rows}


def compute_window(conn: Connection, seconds: int | None) -> Window:
    """The last ``seconds`` (None: since the last reset), ending now: stored increments from the
    snapshot nearest the start to the newest, plus the live counters' increments since."""
    window = Window(seconds)
    try:
        reading = read_now(conn)
        known = read_known(conn)
        newest = newest_snapshot(conn)
        window.texts = read_texts(conn, reading, reading.counters.keys() - known.counters.keys())
        window.end = reading.at
        if seconds is None:
            # stats_reset does not move when only this database is reset: the page records that.
            reset_here = newest["database_reset_at"] if newest else None
            window.start = max(reading.stats_reset, reset_here) if reset_here else reading.stats_reset
            totals = dict(reading.counters)
        else:
            if newest is None:
                raise MonitorError("No snapshot yet: the first one starts the windows.")
            base, window.truncated = nearest_snapshot(conn, reading.at - timedelta(seconds=seconds))
            totals = stored_increments(conn, base["id"])
            restarted = reading.stats_reset != newest["stats_reset"]
            for queryid, now in reading.counters.items():
                done = increment(None if restarted else known.counters.get(queryid), now)
                if done.calls:
                    totals[queryid] = totals.get(queryid, ZERO) + done
            window.start = base["taken_at"]
            if restarted or base["stats_reset"] != newest["stats_reset"]:
                window.reset_inside = reading.stats_reset
            elif base["database_reset_at"] != newest["database_reset_at"]:
                window.reset_inside = newest["database_reset_at"]
            window.evictions = max(0, reading.dealloc - base["dealloc"])
    except MonitorError as exc:
        window.error = str(exc)
        return window
    monitor = known.monitor | {queryid for queryid, text in window.texts.items() if is_monitor_text(text)}
    window.totals = {
        queryid: done for queryid, done in totals.items() if done.calls and queryid not in monitor
    }
    return window


class SlowStatements(NamedTuple):
    """The overview's slow-query check.

    ``count``: statements of this database (the monitor's own left out) whose mean execution
    time over the last ``window_seconds`` is above PERF_SLOW_QUERY_MS; None when unmeasured.
    ``level``: OK with none; WARNING with one or more; CRITICAL when they take
    SLOW_SHARE_CRITICAL_PCT (50) % or more of the database's execution time in the window;
    UNKNOWN when pg_stat_statements or the snapshots could not be read, with ``error`` saying
    why (None otherwise).
    """

    count: int | None
    level: Level
    error: str | None


def slow_verdict(window: Window) -> SlowStatements:
    if window.error:
        return SlowStatements(None, Level.UNKNOWN, window.error)
    slow = window.slow()
    if not slow:
        return SlowStatements(0, Level.OK, None)
    share = 100 * sum(done.total_exec_time for done in slow.values()) / (window.total_ms or 1)
    return SlowStatements(
        len(slow), Level.CRITICAL if share >= SLOW_SHARE_CRITICAL_PCT else Level.WARNING, None
    )


def slow_statements(window_seconds: int = 3600) -> SlowStatements:
    """The Queries page's slow statements over the last ``window_seconds``, for the overview
    (takes a snapshot first when the newest is stale, as the page does)."""
    with monitor_connection() as conn:
        ensure_fresh_snapshot(conn)  # a failure leaves an older base: the window stays exact
        return slow_verdict(compute_window(conn, window_seconds))


# --- reset ---------------------------------------------------------------------------------------


def reset_statistics(conn: Connection) -> str:
    """pg_stat_statements_reset for this database only (its dbid: the server's other databases
    keep their statistics), between two snapshots so that no window loses what ran before."""
    notes = []
    try:
        take_snapshot(conn, wait=True)
        reading = read_now(conn)
    except MonitorError as exc:
        return f"The statistics were not reset: {exc}"
    if not reading.dbid:  # 0 would mean every database
        return "The statistics were not reset: this database's oid is unknown."
    done = fetch(
        conn, f"{MARK}SELECT pg_stat_statements_reset(0, %s::oid, 0), clock_timestamp() AS at", [reading.dbid]
    )
    if not done.ok:
        return f"The statistics of {reading.database} were not reset: {done.error}"
    try:
        take_snapshot(conn, wait=True, database_reset_at=done.first()["at"])
    except MonitorError as exc:
        notes.append(f" The snapshot after the reset failed ({exc}); the next one sees the reset anyway.")
    return (
        f"Reset pg_stat_statements for database {reading.database} (dbid {reading.dbid}): "
        f"{len(reading.counters)} statements cleared; the server's other databases keep theirs."
        + "".join(notes)
    )


# --- EXPLAIN -------------------------------------------------------------------------------------


class Refused(Exception):
    """Not something this page will EXPLAIN; the message says why."""


class Token(NamedTuple):
    kind: str  # space, comment, string, identifier, param, word, number, semicolon, other
    text: str


_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d][\w$]*")
_NUMBER = re.compile(r"\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?")
_PARAM = re.compile(r"\$\d+")
_DOLLAR_TAG = re.compile(r"\$([^\W\d]\w*)?\$")


def sql_tokens(sql: str) -> list[Token]:
    """PostgreSQL's lexical structure, as far as telling code from literals and comments needs:
    quoted strings (with '' and, after E, backslash escapes), dollar quotes, quoted identifiers,
    nested block comments, line comments, $n parameters. Raises Refused when something is left
    open (an unterminated literal could hide the rest of the text)."""
    tokens: list[Token] = []
    i, end = 0, len(sql)
    while i < end:
        char = sql[i]
        if char.isspace():
            match = _SPACE.match(sql, i)
            kind, j = "space", match.end()
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            kind, j = "comment", end if j < 0 else j
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2
            while depth and j < end:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                raise Refused("A comment is not closed.")
            kind = "comment"
        elif char == "'":
            backslashes = bool(tokens) and tokens[-1].kind == "word" and tokens[-1].text.lower() == "e"
            j = i + 1
            while True:
                if j >= end:
                    raise Refused("A quoted string is not closed.")
                if backslashes and sql[j] == "\\":
                    j += 2
                elif sql[j] == "'":
                    if sql.startswith("''", j):
                        j += 2
                    else:
                        j += 1
                        break
                else:
                    j += 1
            kind = "string"
        elif char == '"':
            j = i + 1
            while True:
                j = sql.find('"', j)
                if j < 0:
                    raise Refused("A quoted identifier is not closed.")
                if sql.startswith('""', j):
                    j += 2
                else:
                    j += 1
                    break
            kind = "identifier"
        elif match := _PARAM.match(sql, i):
            kind, j = "param", match.end()
        elif match := _DOLLAR_TAG.match(sql, i):
            close = sql.find(match.group(0), match.end())
            if close < 0:
                raise Refused("A dollar-quoted string is not closed.")
            kind, j = "string", close + len(match.group(0))
        elif match := _WORD.match(sql, i):
            kind, j = "word", match.end()
        elif match := _NUMBER.match(sql, i):
            kind, j = "number", match.end()
        else:
            kind, j = ("semicolon" if char == ";" else "other"), i + 1
        tokens.append(Token(kind, sql[i:j]))
        i = j
    return tokens


def placeholders(query: str) -> list[int]:
    """The numbers of a normalised statement's parameters ($1, $2...), in order."""
    try:
        return sorted({int(token.text[1:]) for token in sql_tokens(query) if token.kind == "param"})
    except Refused:
        return []


def with_values(query: str, values: dict[int, str]) -> str:
    """The statement with each $n replaced by the SQL literal staff typed for it."""
    parts = []
    for token in sql_tokens(query):
        if token.kind != "param":
            parts.append(token.text)
            continue
        value = values.get(int(token.text[1:]), "").strip()
        if not value:
            raise Refused(f"Give a value for {token.text}.")
        parts.append(value)
    return "".join(parts)


# Words that make a statement write, or create a table (SELECT ... INTO); FOR [NO KEY] UPDATE
# only locks rows and is allowed.
_WRITE_WORDS = {"insert", "update", "delete", "merge", "into", "truncate", "copy"}


def single_select(sql: str) -> str:
    """``sql`` without a trailing semicolon when it is one SELECT or WITH statement that reads
    only; Refused otherwise."""
    tokens = sql_tokens(sql)
    code = [index for index, token in enumerate(tokens) if token.kind not in ("space", "comment")]
    while code and tokens[code[-1]].kind == "semicolon":
        code.pop()
    if not code:
        raise Refused("There is no statement to explain.")
    if any(tokens[index].kind == "semicolon" for index in code):
        raise Refused("More than one statement: only a single SELECT or WITH statement can be explained.")
    first = next((tokens[index] for index in code if tokens[index].text != "("), tokens[code[0]])
    if first.kind != "word" or first.text.lower() not in ("select", "with"):
        raise Refused(
            "Only a single SELECT or WITH statement can be explained; "
            f"this one starts with {first.text.upper()}."
        )
    previous = ""
    for index in code:
        word = tokens[index].text.lower() if tokens[index].kind == "word" else ""
        if word in _WRITE_WORDS and not (word == "update" and previous in ("for", "key")):
            raise Refused(f"{word.upper()} writes: only statements that read can be explained.")
        previous = word
    return "".join(token.text for token in tokens[: code[-1] + 1])


@dataclass
class Explained:
    sql: str = ""
    plan: list[str] | None = None
    error: str | None = None


def explain(conn: Connection, query: str, values: dict[int, str]) -> Explained:
    """EXPLAIN (not ANALYZE: the statement is planned, never run) of ``query`` with staff's
    values, in a read-only transaction that is rolled back."""
    try:
        sql = single_select(with_values(query, values))
    except Refused as exc:
        return Explained(error=str(exc))
    if conn is None:
        return Explained(sql=sql, error="PostgreSQL is unreachable.")
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(f"{MARK}SET TRANSACTION READ ONLY")
            # binary=True sends it with the extended protocol, where the server itself refuses a
            # second statement: the check above is not the only guard.
            cursor = conn.execute(f"{MARK}EXPLAIN {sql}", binary=True)
            return Explained(sql=sql, plan=[row[0] for row in cursor.fetchall()])
    except psycopg.errors.QueryCanceled:
        return Explained(sql=sql, error=f"Timed out after {settings.PERF_STATEMENT_TIMEOUT_MS} ms.")
    except psycopg.Error as exc:
        return Explained(sql=sql, error=f"{type(exc).__name__}: {str(exc).strip()}")


def statement_text(conn: Connection, queryid: int) -> str | None:
    """A statement's normalised text: stored by a snapshot, or still only in pg_stat_statements."""
    table = Statement._meta.db_table
    stored = fetch(conn, f"{MARK}SELECT query FROM {table} WHERE queryid = %s", [queryid])  # noqa: S608
    if stored.rows:
        return stored.first()["query"]
    live = fetch(
        conn,
        f"{MARK}SELECT min(query) AS query FROM pg_stat_statements(true) WHERE queryid = %s "  # noqa: S608
        "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [queryid],
    )
    return live.first().get("query")


# --- the page ------------------------------------------------------------------------------------


def span(delta: timedelta) -> str:
    """A duration for people: 45 s, 4 min 57 s, 23 h 58 min, 6 days 23 h."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def milliseconds(value: float) -> str:
    return f"{nice(value / 1000)} s" if value >= 1000 else f"{nice(value)} ms"


def _pct(value: float | None) -> str:
    return NONE if value is None else f"{nice(value)} %"


def snapshot_storage(conn: Connection) -> Section:
    """How many snapshots are kept, from when to when, and the bytes of the three tables."""
    sizes = " + ".join(
        f"pg_total_relation_size('{model._meta.db_table}')"
        for model in (Statement, StatementSnapshot, StatementDelta)
    )
    return fetch(
        conn,
        f"{MARK}SELECT count(*) AS snapshots, min(taken_at) AS oldest, max(taken_at) AS newest, "  # noqa: S608
        f"{sizes} AS bytes FROM {StatementSnapshot._meta.db_table}",
    )


def megabytes(size: int | None) -> str:
    return NONE if size is None else f"{nice(size / 1_048_576)} MB"


def _texts(conn: Connection, window: Window, ids: list[int]) -> dict[int, str]:
    table = Statement._meta.db_table
    stored = fetch(conn, f"{MARK}SELECT queryid, query FROM {table} WHERE queryid = ANY(%s)", [ids])  # noqa: S608
    return {**(window.texts or {}), **{row["queryid"]: row["query"] for row in stored.rows}}


@admin.register(QueryStats)
class QueryStatsAdmin(MonitorPageAdmin):
    template_name = "admin/perf/monitor/queries.html"
    order = 30

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            re_path(
                r"^reset/$", self.admin_site.admin_view(self.reset_view), name="{}_{}_reset".format(*info)
            ),
            re_path(
                r"^explain/(?P<queryid>-?\d+)/$",
                self.admin_site.admin_view(self.explain_view),
                name="{}_{}_explain".format(*info),
            ),
            *super().get_urls(),
        ]

    def _url(self, name: str, **kwargs: Any) -> str:
        return reverse(f"{self.admin_site.name}:perf_querystats_{name}", kwargs=kwargs or None)

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        key = request.GET.get("window", DEFAULT_WINDOW)
        key = key if key in WINDOWS else DEFAULT_WINDOW
        order = request.GET.get("order", "total")
        order = order if order in ORDERS else "total"
        with monitor_connection() as conn:
            snapshot_error = ensure_fresh_snapshot(conn)
            window = compute_window(conn, WINDOWS[key][1])
            top = window.top(order) if not window.error else []
            texts = _texts(conn, window, [queryid for queryid, _ in top]) if top else {}
            history = snapshot_storage(conn)
        total_ms = window.total_ms
        rows = [
            {
                "rank": rank,
                "queryid": queryid,
                "query": texts.get(queryid, "(text not available: evicted from pg_stat_statements)"),
                "total": milliseconds(done.total_exec_time),
                "share": _pct(100 * done.total_exec_time / total_ms if total_ms else None),
                "calls": f"{done.calls:,}",
                "mean": milliseconds(done.mean_ms),
                "rows": f"{done.rows:,}",
                "hit": _pct(done.hit_pct),
                "slow": done.mean_ms > settings.PERF_SLOW_QUERY_MS,
                "explain_url": self._url("explain", queryid=queryid),
            }
            for rank, (queryid, done) in enumerate(top, start=1)
        ]
        verdict = slow_verdict(window)
        return {
            "window": window,
            "windows": [
                {
                    "key": k,
                    "label": label,
                    "url": "?" + urlencode({"window": k, "order": order}),
                    "current": k == key,
                }
                for k, (label, _) in WINDOWS.items()
            ],
            "orders": [
                {
                    "key": k,
                    "label": label,
                    "url": "?" + urlencode({"window": key, "order": k}),
                    "current": k == order,
                }
                for k, label in ORDERS.items()
            ],
            "rows": rows,
            "statements": len(window.totals or {}),
            "total_time": milliseconds(total_ms),
            "calls": f"{window.calls:,}",
            "covered": span(window.covered) if window.covered is not None else NONE,
            "slow": verdict,
            "snapshot_error": snapshot_error,
            "history": history,
            "size": megabytes(history.first().get("bytes")),
            "slow_ms": settings.PERF_SLOW_QUERY_MS,
            "slow_share_pct": SLOW_SHARE_CRITICAL_PCT,
            "max_age": span(timedelta(seconds=settings.PERF_SNAPSHOT_MAX_AGE_SECONDS)),
            "retention_days": settings.PERF_SNAPSHOT_RETENTION_DAYS,
            "reset_url": self._url("reset"),
        }

    def reset_view(self, request: HttpRequest) -> HttpResponse:
        """Confirm, then reset pg_stat_statements for this database only."""
        with monitor_connection() as conn:
            try:
                reading = read_now(conn)
            except MonitorError as exc:
                reading, error = None, str(exc)
        if reading is None:
            self.message_user(request, error, messages.ERROR)
            return HttpResponseRedirect(self.page_url())

        def perform() -> str:
            with monitor_connection() as conn:
                return reset_statistics(conn) + f" Asked by {request.user.get_username()}."

        return self.confirm(
            request,
            title="Reset query statistics",
            question=(
                f"Reset pg_stat_statements for database {reading.database}? Every window starts again "
                "from zero; the server's other databases keep their statistics."
            ),
            details=[
                ("Database", f"{reading.database} (oid {reading.dbid})"),
                ("Statements tracked", len(reading.counters)),
                ("Runs", f"SELECT pg_stat_statements_reset(0, {reading.dbid}, 0)"),
            ],
            perform=perform,
            object_id=reading.database,
            object_repr=f"pg_stat_statements of {reading.database}",
            danger=True,
        )

    def explain_view(self, request: HttpRequest, queryid: str) -> HttpResponse:
        """One statement's text, a field per parameter, and its plan once asked."""
        with monitor_connection() as conn:
            query = statement_text(conn, int(queryid))
            if query is None:
                raise Http404("No such statement in this database's statistics.")
            numbers = placeholders(query)
            values = {number: request.GET.get(f"p{number}", "") for number in numbers}
            result = explain(conn, query, values) if "explain" in request.GET else None
        try:
            single_select(query)  # $n are parameters to its lexer, so the text can be judged now
            refused = None
        except Refused as exc:
            refused = str(exc)
        context = {
            **self.base_context(request),
            "title": "Explain a statement",
            "queryid": queryid,
            "query": query,
            "parameters": [{"number": n, "name": f"p{n}", "value": values[n]} for n in numbers],
            "result": result,
            "refused": refused,
            "back_url": self.page_url(),
        }
        return TemplateResponse(request, "admin/perf/monitor/queries_explain.html", context)

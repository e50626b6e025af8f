"""The Live queries page: what this database is running right now, and a way to stop it.

It lists, from ``pg_stat_activity``, the client sessions of this database whose query has been
running longer than PERF_LONG_QUERY_SECONDS, and those sitting idle inside an open transaction
that long (they hold their locks and keep VACUUM from removing dead rows), each with the
sessions it waits for (``pg_blocking_pids``). The monitor's own sessions are left out.

Cancel (``pg_cancel_backend``: the running statement fails, the session lives on) and terminate
(``pg_terminate_backend``: the session is closed, its transaction rolled back) go through a
confirmation page showing the query, and each leaves an admin log entry naming the query and the
staff user. Only client backends of this database can be signalled: never another database's
sessions on the same server, never PostgreSQL's own processes, never the monitor. The server
allows it to a superuser, to the role that owns the session, or to a member of
``pg_signal_backend``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse

from perf.monitor.charts import nice
from perf.monitor.db import APPLICATION_NAME, Section, fetch, monitor_connection
from perf.monitor.models import LiveQuery
from perf.monitor.pages import ActionFailed, Level, MonitorPageAdmin

# Leading comment: pg_stat_statements keeps it in the statement's text, which is how the
# Queries page recognises (and leaves out) the monitor's own reads.
_MARK = f"/* {APPLICATION_NAME} */ "

NONE = "\N{EN DASH}"  # an empty cell
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")

SESSIONS_SQL = (
    _MARK
    + """
SELECT pid, usename AS username, application_name, client_addr::text AS client_addr, client_port,
       state, wait_event_type, wait_event, backend_start, xact_start, query_start, state_change,
       extract(epoch FROM clock_timestamp() - query_start)::float8 AS running_s,
       extract(epoch FROM clock_timestamp() - state_change)::float8 AS idle_s,
       extract(epoch FROM clock_timestamp() - xact_start)::float8 AS transaction_s,
       pg_blocking_pids(pid) AS blocked_by,
       query
FROM pg_stat_activity
WHERE datname = current_database()
  AND backend_type = 'client backend'
  AND pid <> pg_backend_pid()
  AND application_name IS DISTINCT FROM %(monitor)s
  AND ((state = 'active' AND clock_timestamp() - query_start > make_interval(secs => %(threshold)s))
    OR (state IN ('idle in transaction', 'idle in transaction (aborted)')
        AND clock_timestamp() - state_change > make_interval(secs => %(threshold)s)))
ORDER BY coalesce(query_start, xact_start)
"""
)

# One session, when staff act on it: it must still be a client backend of this database.
SESSION_SQL = (
    _MARK
    + """
SELECT pid, usename AS username, application_name, state, backend_start, query,
       extract(epoch FROM clock_timestamp() - query_start)::float8 AS running_s
FROM pg_stat_activity
WHERE pid = %(pid)s
  AND datname = current_database()
  AND backend_type = 'client backend'
  AND pid <> pg_backend_pid()
  AND application_name IS DISTINCT FROM %(monitor)s
"""
)


def _seconds(value: float | None) -> str:
    """A duration for people: 850 ms, 4.2 s, 3 min 20 s, 2 h 5 min."""
    if value is None:
        return NONE
    if value < 1:
        return f"{nice(value * 1000)} ms"
    if value < 60:
        return f"{nice(value)} s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _backend_key(backend_start: datetime | None) -> str:
    """Identifies one session beyond its pid, which PostgreSQL reuses once the session ends."""
    return str(int(backend_start.timestamp() * 1_000_000)) if backend_start else ""


def critical_seconds() -> float:
    """Red from here: longer than the API's own statement timeout, which none of its requests can
    reach, so the query comes from elsewhere (a migration, a job, a manual session)."""
    timeout_ms = settings.DATABASE_STATEMENT_TIMEOUT_MS
    return timeout_ms / 1000 if timeout_ms else 10 * settings.PERF_LONG_QUERY_SECONDS


def _level(seconds: float, *, blocked: bool) -> Level:
    if seconds >= critical_seconds():
        return Level.CRITICAL
    # A session waiting on another's lock is amber whatever its age: it is the symptom to chase.
    return Level.WARNING if blocked or seconds >= settings.PERF_LONG_QUERY_SECONDS else Level.OK


@dataclass
class Session:
    """A row of the page: a long-running query, or a session idle in its transaction."""

    pid: int
    username: str | None
    application: str
    client: str
    state: str
    wait: str
    backend_key: str
    query: str
    seconds: float  # how long the query has run, or how long the transaction has been open
    idle_seconds: float | None
    blocked_by: list[int]
    blocks: list[int]
    level: Level
    actions: list[tuple[str, str]] = field(default_factory=list)  # (label, confirmation URL)

    @property
    def idle_in_transaction(self) -> bool:
        return self.state in IDLE_IN_TRANSACTION

    @property
    def duration(self) -> str:
        return _seconds(self.seconds)

    @property
    def idle(self) -> str:
        return _seconds(self.idle_seconds)


def sessions(section: Section) -> list[Session]:
    """The page's rows from SESSIONS_SQL, with who blocks whom among them."""
    blocks: dict[int, list[int]] = {}
    for row in section.rows:
        for blocker in row["blocked_by"] or []:
            blocks.setdefault(blocker, []).append(row["pid"])
    result = []
    for row in section.rows:
        idle = row["state"] in IDLE_IN_TRANSACTION
        seconds = (row["transaction_s"] if idle else row["running_s"]) or 0.0
        blocked_by = list(row["blocked_by"] or [])
        if row["client_addr"] is None:
            client = "local socket"
        else:
            client = f"{row['client_addr'].split('/')[0]}:{row['client_port']}"
        result.append(
            Session(
                pid=row["pid"],
                username=row["username"],
                application=row["application_name"] or "(none)",
                client=client,
                state=row["state"],
                wait=": ".join(part for part in (row["wait_event_type"], row["wait_event"]) if part),
                backend_key=_backend_key(row["backend_start"]),
                query=row["query"] or "",
                seconds=seconds,
                idle_seconds=row["idle_s"] if idle else None,
                blocked_by=blocked_by,
                blocks=sorted(blocks.get(row["pid"], [])),
                level=_level(seconds, blocked=bool(blocked_by)),
            )
        )
    return sorted(result, key=lambda session: -session.seconds)


def read_sessions(conn: psycopg.Connection | None) -> tuple[list[Session], str | None]:
    section = fetch(
        conn, SESSIONS_SQL, {"monitor": APPLICATION_NAME, "threshold": settings.PERF_LONG_QUERY_SECONDS}
    )
    return sessions(section), section.error


class LongRunning(NamedTuple):
    """The overview's check: sessions on the Live queries page and how long the oldest has run.

    ``count`` counts queries running longer than PERF_LONG_QUERY_SECONDS plus sessions idle in a
    transaction that long (None when unmeasured); ``longest_seconds`` is the oldest query's run
    time or transaction's age (0 when none). ``level``: OK when there are none; WARNING when there
    is one; CRITICAL when one has lasted longer than DATABASE_STATEMENT_TIMEOUT_MS (the API's
    requests cannot, so something else is running); UNKNOWN, with ``error`` set, when
    pg_stat_activity could not be read.
    """

    count: int | None
    longest_seconds: float
    level: Level
    error: str | None


def summarise(found: list[Session], error: str | None) -> LongRunning:
    if error:
        return LongRunning(None, 0.0, Level.UNKNOWN, error)
    if not found:
        return LongRunning(0, 0.0, Level.OK, None)
    longest = max(session.seconds for session in found)
    level = Level.CRITICAL if longest >= critical_seconds() else Level.WARNING
    return LongRunning(len(found), longest, level, None)


def long_running() -> LongRunning:
    """The Live queries page in one line, for the overview."""
    with monitor_connection() as conn:
        found, error = read_sessions(conn)
    return summarise(found, error)


def _truncate(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


@dataclass(frozen=True)
class Signal:
    """One of the two actions on a session."""

    name: str  # URL part and verb
    function: str  # the server function that sends it
    title: str
    explains: str
    done: str


CANCEL = Signal(
    "cancel",
    "pg_cancel_backend",
    "Cancel the query",
    "Its statement stops with an error (57014 query_canceled); the session and its connection live on.",
    "Cancelled the query of",
)
TERMINATE = Signal(
    "terminate",
    "pg_terminate_backend",
    "Terminate the session",
    "The connection is closed and its open transaction rolled back; its client sees the connection drop.",
    "Terminated the session of",
)
SIGNALS = {signal.name: signal for signal in (CANCEL, TERMINATE)}


@admin.register(LiveQuery)
class LiveQueryAdmin(MonitorPageAdmin):
    template_name = "admin/perf/monitor/live.html"
    order = 50

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<int:pid>/<str:action>/",
                self.admin_site.admin_view(self.signal_view),
                name="{}_{}_signal".format(*info),
            ),
            *super().get_urls(),
        ]

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        with monitor_connection() as conn:
            found, error = read_sessions(conn)
        running = [session for session in found if not session.idle_in_transaction]
        idle = [session for session in found if session.idle_in_transaction]
        for session in found:
            session.actions = [
                (signal.name.capitalize(), self.signal_url(session, signal))
                # Cancelling reaches only a running statement; an idle transaction can only end.
                for signal in ((TERMINATE,) if session.idle_in_transaction else (CANCEL, TERMINATE))
            ]
        summary = summarise(found, error)
        return {
            "error": error,
            "running": running,
            "idle": idle,
            "summary": summary,
            "blocked": sum(1 for session in found if session.blocked_by),
            "longest": _seconds(summary.longest_seconds) if found else NONE,
            "threshold": _seconds(settings.PERF_LONG_QUERY_SECONDS),
            "critical": _seconds(critical_seconds()),
        }

    def signal_url(self, session: Session, signal: Signal) -> str:
        url = reverse(
            f"{self.admin_site.name}:perf_livequery_signal",
            kwargs={"pid": session.pid, "action": signal.name},
        )
        return f"{url}?backend={session.backend_key}"

    def _refuse(self, request: HttpRequest, message: str) -> HttpResponse:
        self.message_user(request, message, messages.ERROR)
        return HttpResponseRedirect(self.page_url())

    def signal_view(self, request: HttpRequest, pid: int, action: str) -> HttpResponse:
        """GET: confirm cancelling or terminating ``pid``, showing its query; POST: do it."""
        signal = SIGNALS.get(action)
        if signal is None or not self.has_view_permission(request):
            return self._refuse(request, f"Unknown action {action!r}.")
        with monitor_connection() as conn:
            found = fetch(conn, SESSION_SQL, {"pid": pid, "monitor": APPLICATION_NAME})
        if not found.ok:
            return self._refuse(request, f"Could not read pg_stat_activity: {found.error}")
        session = found.first()
        if not session:
            return self._refuse(
                request,
                f"Pid {pid} is not a client session of this database (it may have ended); "
                "only those can be cancelled or terminated from here.",
            )
        # The pid of a session that ended may already belong to a new one: act only on the
        # session the confirmation page showed.
        expected = request.GET.get("backend")
        if expected and expected != _backend_key(session["backend_start"]):
            return self._refuse(request, f"Pid {pid} now belongs to another session; nothing was sent.")
        query = session["query"] or ""
        user = request.user.get_username()

        def perform() -> str:
            with monitor_connection() as conn:
                sent = fetch(conn, f"{_MARK}SELECT {signal.function}(%s) AS sent", [pid])
            described = (
                f"pid {pid} (application {session['application_name'] or '(none)'}, "
                f"role {session['username']}, running {_seconds(session['running_s'])})"
            )
            if not sent.ok:
                raise ActionFailed(
                    f"{signal.title} of {described}, asked by {user}: {sent.error} Query: {query}"
                )
            if not sent.first().get("sent"):
                raise ActionFailed(
                    f"{signal.title}: {described} had already ended when {user} asked. Query: {query}"
                )
            return f"{signal.done} {described} at the request of {user}. Query: {query}"

        return self.confirm(
            request,
            title=f"{signal.title} of pid {pid}",
            question=f"{signal.title} of pid {pid}? {signal.explains}",
            details=[
                ("Pid", pid),
                ("Application", session["application_name"] or "(none)"),
                ("Role", session["username"]),
                ("State", session["state"]),
                ("Running for", _seconds(session["running_s"])),
                ("Query", query),
            ],
            perform=perform,
            object_id=str(pid),
            object_repr=_truncate(f"pid {pid}: {query}", 200),
            danger=True,
        )

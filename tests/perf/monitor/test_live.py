"""The Live queries page: long-running queries and idle transactions of this database, who
blocks whom, and the cancel / terminate actions with their confirmation and log entry.

Every session acted on here is one the test opened itself (its own psycopg connection); the
monitor sees only committed data, so these tests commit (``transaction=True``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client

from perf.monitor import live
from perf.monitor.db import connection_params, monitor_connection
from perf.monitor.pages import Level
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/admin/perf/livequery/"


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True))
    return client


@pytest.fixture(autouse=True)
def _short_threshold(settings):
    settings.PERF_LONG_QUERY_SECONDS = 0.2


def own_connection(**overrides) -> psycopg.Connection:
    """A client session of the test database that is not the monitor's (no statement timeout)."""
    params = {
        **connection_params(),
        "application_name": "bx-test-session",
        "options": "-c statement_timeout=0",
    }
    return psycopg.connect(**{**params, **overrides})


@dataclass
class Running:
    """A statement running in a thread on its own connection, and how it ended."""

    conn: psycopg.Connection
    pid: int
    thread: threading.Thread
    outcome: dict = field(default_factory=dict)

    def ended(self, timeout: float = 10) -> BaseException | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the statement is still running"
        return self.outcome.get("error")


def wait_for(pid: int, *, state: str = "active", seconds: float = 0.4, timeout: float = 10) -> None:
    """Until ``pid`` has been in ``state`` (and, when active, running) for ``seconds``."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT extract(epoch FROM clock_timestamp() - state_change) FROM pg_stat_activity "
                "WHERE pid = %s AND state = %s",
                [pid, state],
            )
            row = cursor.fetchone()
            if row and row[0] >= seconds:
                return
            time.sleep(0.05)
    raise AssertionError(f"pid {pid} never stayed {state} for {seconds} s")


@contextmanager
def running(sql: str, conn: psycopg.Connection | None = None, *, wait: bool = True) -> Iterator[Running]:
    conn = conn or own_connection()
    statement = Running(conn, conn.info.backend_pid, threading.Thread(daemon=True, target=lambda: None))

    def target() -> None:
        try:
            conn.execute(sql)
        except psycopg.Error as exc:  # collected for the assertions
            statement.outcome["error"] = exc

    statement.thread = threading.Thread(target=target, daemon=True)
    statement.thread.start()
    try:
        if wait:
            wait_for(statement.pid)
        yield statement
    finally:
        if statement.thread.is_alive():
            conn.cancel_safe()  # the test's own session, nobody else's
        statement.thread.join(10)
        conn.close()


def page(client: Client):
    response = client.get(URL)
    assert response.status_code == 200, response.content[:3000]
    return response


def session(response, pid: int) -> live.Session:
    found = [s for s in response.context["running"] + response.context["idle"] if s.pid == pid]
    assert len(found) == 1, (pid, response.context["running"], response.context["idle"])
    return found[0]


def test_the_live_page_is_refused_to_non_staff_and_sends_anonymous_users_to_login():
    member = Client()
    member.force_login(UserFactory(is_staff=False))

    with running("SELECT pg_sleep(30)") as sleeper:
        for url in (URL, f"{URL}{sleeper.pid}/cancel/", f"{URL}{sleeper.pid}/terminate/"):
            anonymous = Client().get(url)
            assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
            assert member.get(url).status_code == 403
            assert member.post(url).status_code == 403
            assert Client().post(url).status_code == 302
        assert sleeper.thread.is_alive()  # nothing was sent
    assert not LogEntry.objects.exists()


def test_a_long_running_query_shows_and_cancel_stops_it_and_is_logged(staff_client):
    with running("SELECT pg_sleep(30) AS bx_long_sleep") as sleeper:
        response = page(staff_client)
        shown = session(response, sleeper.pid)
        assert shown.application == "bx-test-session" and shown.state == "active"
        assert shown.seconds >= 0.4 and shown.level == Level.WARNING
        assert "bx_long_sleep" in shown.query and b"bx_long_sleep" in response.content
        assert shown.client and shown.username
        cancel_url = dict(shown.actions)["Cancel"]

        confirm = staff_client.get(cancel_url)
        assert confirm.status_code == 200 and b"bx_long_sleep" in confirm.content
        assert sleeper.thread.is_alive() and not LogEntry.objects.exists()  # asking is not doing

        done = staff_client.post(cancel_url)

        assert done.status_code == 302 and done["Location"] == URL
        assert isinstance(sleeper.ended(), psycopg.errors.QueryCanceled)
        assert sleeper.conn.execute("SELECT 1").fetchone() == (1,)  # the session lives on
    entry = LogEntry.objects.get()
    assert entry.user.username == "operator" and entry.object_id == str(sleeper.pid)
    assert "Cancelled the query of pid" in entry.change_message
    assert "bx_long_sleep" in entry.change_message and "operator" in entry.change_message
    assert sleeper.pid not in [s.pid for s in page(staff_client).context["running"]]


def test_terminate_closes_the_session_and_is_logged(staff_client):
    with running("SELECT pg_sleep(30) AS bx_doomed_sleep") as sleeper:
        terminate_url = dict(session(page(staff_client), sleeper.pid).actions)["Terminate"]
        assert b"bx_doomed_sleep" in staff_client.get(terminate_url).content

        staff_client.post(terminate_url)

        assert isinstance(sleeper.ended(), psycopg.OperationalError)
        assert sleeper.conn.closed or sleeper.conn.broken
    entry = LogEntry.objects.get()
    assert (
        "Terminated the session of pid" in entry.change_message and "bx_doomed_sleep" in entry.change_message
    )
    assert entry.user.username == "operator"


def test_a_lock_wait_shows_who_blocks_it_and_the_idle_transaction_holding_the_lock(staff_client):
    holder = own_connection(application_name="bx-test-holder")
    holder.execute("BEGIN")
    holder.execute("SELECT pg_advisory_xact_lock(424242)")
    try:
        wait_for(holder.info.backend_pid, state="idle in transaction")
        with running("SELECT pg_advisory_xact_lock(424242) AS bx_waiting") as waiter:
            response = page(staff_client)
            blocked = session(response, waiter.pid)
            holding = session(response, holder.info.backend_pid)

            assert blocked.blocked_by == [holder.info.backend_pid]
            assert blocked.wait == "Lock: advisory"
            assert holding.idle_in_transaction and holding.blocks == [waiter.pid]
            assert [label for label, _ in holding.actions] == ["Terminate"]  # nothing runs to cancel
            assert holding in response.context["idle"] and response.context["blocked"] == 1
            assert f'<a href="#pid-{holder.info.backend_pid}">'.encode() in response.content

            holder.execute("ROLLBACK")  # releases the lock: the waiter finishes on its own
            assert waiter.ended() is None
    finally:
        holder.close()


def test_pids_that_are_not_client_sessions_of_this_database_are_refused(staff_client):
    other_database = connection.settings_dict["NAME"].removeprefix("test_")  # bx_queries, this suite's
    with own_connection(dbname=other_database) as elsewhere, monitor_connection() as monitor:
        for pid in (elsewhere.info.backend_pid, monitor.info.backend_pid, 2**22 + 7):
            for action in ("cancel", "terminate"):
                url = f"{URL}{pid}/{action}/"
                for response in (staff_client.get(url), staff_client.post(url)):
                    assert response.status_code == 302 and response["Location"] == URL
                    messages = [str(m) for m in response.wsgi_request._messages]
                    assert "is not a client session of this database" in messages[-1]
        assert elsewhere.execute("SELECT 1").fetchone() == (1,)
        assert monitor.execute("SELECT 1").fetchone() == (1,)
    assert not LogEntry.objects.exists()


def test_a_pid_reused_by_another_session_is_refused(staff_client):
    with running("SELECT pg_sleep(30)") as sleeper:
        url = f"{URL}{sleeper.pid}/cancel/?backend=1"

        response = staff_client.post(url)

        assert response.status_code == 302 and sleeper.thread.is_alive()
        assert not LogEntry.objects.exists()


def test_long_running_summary_for_the_overview(settings):
    assert live.long_running() == (0, 0.0, Level.OK, None)
    with running("SELECT pg_sleep(30)"):
        warning = live.long_running()
        settings.DATABASE_STATEMENT_TIMEOUT_MS = 300  # the API's own timeout: nothing of it lasts this long
        critical = live.long_running()

    assert warning.count == 1 and warning.longest_seconds >= 0.4 and warning.level == Level.WARNING
    assert warning.error is None
    assert critical.level == Level.CRITICAL


def test_a_failing_read_says_so_and_the_page_still_renders(monkeypatch, settings, staff_client):
    monkeypatch.setattr(live, "SESSIONS_SQL", "SELECT pg_sleep(5), %(threshold)s, %(monitor)s")
    settings.PERF_STATEMENT_TIMEOUT_MS = 200

    response = page(staff_client)

    assert b"Timed out after 200 ms" in response.content
    assert live.long_running().level == Level.UNKNOWN

"""The Queries page: windows from pg_stat_statements snapshots, slow statements, a reset of
this database only, EXPLAIN on demand, and perf_snapshot's pruning.

The monitor reads on its own connection, which sees only committed data: these tests commit
(``transaction=True``)."""

from __future__ import annotations

import io
from datetime import timedelta

import psycopg
import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from perf.monitor import queries
from perf.monitor.db import connection_params, monitor_connection
from perf.monitor.models import Statement, StatementDelta, StatementSnapshot
from perf.monitor.pages import Level
from perf.monitor.queries import Counters, Refused, increment, single_select
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/admin/perf/querystats/"
RESET_URL = f"{URL}reset/"


# Statement shapes no other statement of the suite has (see the reset test).
THIS_SHAPE = "relpages = $2 AND relallvisible = $3"
THIS_MARKER = (
    "SELECT count(*) FROM pg_class WHERE relname = 'bx-this' AND relpages = -7 AND relallvisible = 0"
)
OTHER_SHAPE = "relpages = $2 AND relnatts = $3"
OTHER_MARKER = "SELECT count(*) FROM pg_class WHERE relname = 'bx-other' AND relpages = -7 AND relnatts = -7"


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True))
    return client


def run(sql: str, params: list | None = None) -> None:
    """A statement of 'the application': the request connection, committed at once."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def statement_like(*fragments: str) -> Statement:
    matches = [s for s in Statement.objects.all() if all(fragment in s.query for fragment in fragments)]
    assert len(matches) == 1, [s.query for s in matches]
    return matches[0]


def this_database_statements() -> dict[int, tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT queryid, query, calls FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return {queryid: (query, calls) for queryid, query, calls in cursor.fetchall()}


def page_rows(response) -> list[dict]:
    assert response.status_code == 200, response.content[:3000]
    return response.context["rows"]


def test_the_queries_page_is_refused_to_non_staff_and_sends_anonymous_users_to_login():
    member = Client()
    member.force_login(UserFactory(is_staff=False))

    for url in (URL, RESET_URL, f"{URL}explain/1/"):
        anonymous = Client().get(url)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
        assert member.get(url).status_code == 403
    assert member.post(RESET_URL).status_code == 403
    assert not LogEntry.objects.exists()


def test_a_slow_query_shows_after_a_snapshot_marked_slow_with_its_window_from_two_snapshots(
    settings, staff_client
):
    settings.PERF_SLOW_QUERY_MS = 100
    call_command("perf_snapshot", stdout=io.StringIO())
    first = StatementSnapshot.objects.get()
    run("SELECT pg_sleep(%s)", [0.25])
    run("SELECT pg_sleep(%s)", [0.25])
    out = io.StringIO()
    call_command("perf_snapshot", stdout=out)

    sleep = statement_like("pg_sleep")
    second = StatementSnapshot.objects.latest("id")
    stored = StatementDelta.objects.get(snapshot=second, queryid=sleep.queryid)
    assert stored.calls == 2 and stored.total_exec_time >= 500
    assert "ran since the previous snapshot" in out.getvalue()

    response = staff_client.get(URL, {"window": "5m"})
    rows = {row["queryid"]: row for row in page_rows(response)}

    assert StatementSnapshot.objects.count() == 2  # fresh enough: the page took none of its own
    assert response.context["window"].start == first.taken_at  # the window starts at snapshot 1
    row = rows[sleep.queryid]
    assert row["query"] == "SELECT pg_sleep($1)"
    assert row["calls"] == "2" and row["slow"] is True
    assert row["mean"].endswith(" ms") and 250 <= float(row["mean"].split()[0]) < 400
    assert response.context["slow"].count >= 1
    assert b"perf-q-slow" in response.content and b"pg_sleep($1)" in response.content
    # One row per statement, ranked by total time: pg_sleep's 0.5 s dwarfs everything else.
    assert response.context["rows"][0]["queryid"] == sleep.queryid


def test_every_window_and_order_renders_and_the_monitor_leaves_its_own_statements_out(staff_client):
    probe = "SELECT count(*) FROM accounts_user WHERE username = %s AND is_staff"
    run(probe, ["nobody"])
    staff_client.get(URL)  # takes the first snapshot
    run(probe, ["nobody"])
    queryid = statement_like("WHERE username = $1 AND is_staff").queryid

    for window in queries.WINDOWS:
        for order in queries.ORDERS:
            response = staff_client.get(URL, {"window": window, "order": order})
            texts = [row["query"] for row in page_rows(response)]
            assert texts and not [text for text in texts if queries.is_monitor_text(text)], (window, order)
            totals = response.context["window"].totals
            assert not [
                q
                for q in totals
                if q in set(Statement.objects.filter(monitor=True).values_list("pk", flat=True))
            ]
            if window == "reset":
                assert totals[queryid].calls >= 2  # cumulative: earlier runs of the suite count too
            else:
                assert totals[queryid].calls == 1  # the run after the first snapshot


def test_the_page_takes_a_snapshot_when_the_newest_is_older_than_the_max_age(settings, staff_client):
    settings.PERF_SNAPSHOT_MAX_AGE_SECONDS = 60
    staff_client.get(URL)
    assert StatementSnapshot.objects.count() == 1
    staff_client.get(URL)
    assert StatementSnapshot.objects.count() == 1  # fresh
    StatementSnapshot.objects.update(taken_at=timezone.now() - timedelta(seconds=61))

    staff_client.get(URL)

    assert StatementSnapshot.objects.count() == 2


def test_a_window_spanning_a_reset_of_this_database_adds_up_both_sides(staff_client):
    probe = "SELECT count(*) AS bx_reset_probe FROM accounts_user WHERE id > %s"
    call_command("perf_snapshot", stdout=io.StringIO())
    for _ in range(3):
        run(probe, [0])
    assert staff_client.post(RESET_URL).status_code == 302
    for _ in range(2):
        run(probe, [0])

    rows = page_rows(staff_client.get(URL, {"window": "1h", "order": "calls"}))
    since_reset = page_rows(staff_client.get(URL, {"window": "reset", "order": "calls"}))

    [hour] = [row for row in rows if "bx_reset_probe" in row["query"]]
    [after] = [row for row in since_reset if "bx_reset_probe" in row["query"]]
    assert hour["calls"] == "5"  # 3 before the reset + 2 after
    assert after["calls"] == "2"
    assert StatementSnapshot.objects.exclude(database_reset_at=None).exists()


def test_reset_empties_this_databases_statistics_only_and_is_logged(staff_client):
    # pg_stat_statements keys a statement by its structure (aliases and constants left out) and
    # keeps the first text it saw: markers must be shapes no other statement has.
    run(THIS_MARKER)
    # Another database on the same server: this suite's own, bx_queries (DATABASE_URL).
    other_params = {**connection_params(), "dbname": connection.settings_dict["NAME"].removeprefix("test_")}
    with psycopg.connect(**other_params) as other:
        other.execute(OTHER_MARKER)
        other_dbid = other.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT stats_reset FROM pg_stat_statements_info")
        stats_reset = cursor.fetchone()[0]
    assert any(THIS_SHAPE in query for query, _ in this_database_statements().values())

    confirm = staff_client.get(RESET_URL)
    assert confirm.status_code == 200
    assert connection.settings_dict["NAME"].encode() in confirm.content
    assert b"pg_stat_statements_reset(0, " in confirm.content
    assert not LogEntry.objects.exists()  # asking is not doing

    done = staff_client.post(RESET_URL)

    assert done.status_code == 302 and done["Location"] == URL
    left = this_database_statements()
    assert not any(THIS_SHAPE in query for query, _ in left.values())
    assert len(left) < 30  # only what ran since the reset: the snapshot after it, this read
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT calls FROM pg_stat_statements WHERE dbid = %s AND query LIKE %s",
            [other_dbid, f"%{OTHER_SHAPE}%"],
        )
        assert cursor.fetchone()[0] >= 1  # the other database kept its statistics
        cursor.execute("SELECT stats_reset FROM pg_stat_statements_info")
        assert cursor.fetchone()[0] == stats_reset  # not the server-wide reset
    entry = LogEntry.objects.get()
    assert entry.user.username == "operator"
    assert entry.object_repr == f"pg_stat_statements of {connection.settings_dict['NAME']}"
    assert "statements cleared" in entry.change_message and "Asked by operator" in entry.change_message


def test_explain_shows_the_plan_of_a_chosen_statement_with_typed_values(staff_client):
    run("SELECT id, username FROM accounts_user WHERE username = %s AND id > %s", ["nobody", 0])
    call_command("perf_snapshot", stdout=io.StringIO())
    chosen = statement_like("FROM accounts_user WHERE username = $1 AND id > $2")
    url = f"{URL}explain/{chosen.queryid}/"

    form = staff_client.get(url)
    explained = staff_client.get(url, {"p1": "'nobody'", "p2": "0", "explain": "Explain"})

    assert form.status_code == 200 and b'name="p1"' in form.content and b'name="p2"' in form.content
    assert explained.status_code == 200
    result = explained.context["result"]
    assert result.error is None, result.error
    assert result.sql == "SELECT id, username FROM accounts_user WHERE username = 'nobody' AND id > 0"
    plan = "\n".join(result.plan)
    assert "accounts_user" in plan and "cost=" in plan and "actual" not in plan  # never ANALYZE
    assert b"Index Scan" in explained.content or b"Seq Scan" in explained.content
    # The page links each of its statements here.
    rows = page_rows(staff_client.get(URL, {"window": "reset"}))
    assert rows and all(row["explain_url"] == f"{URL}explain/{row['queryid']}/" for row in rows)


def test_explain_refuses_a_delete_and_a_second_statement_hidden_in_a_value(staff_client):
    run("DELETE FROM accounts_user WHERE username = %s", ["nobody"])
    run("SELECT id FROM accounts_user WHERE username = %s", ["nobody"])
    UserFactory(username="still-here")
    call_command("perf_snapshot", stdout=io.StringIO())
    delete = statement_like("DELETE FROM accounts_user")
    select = statement_like("SELECT id FROM accounts_user WHERE username = $1")

    refused_delete = staff_client.get(f"{URL}explain/{delete.queryid}/", {"p1": "'x'", "explain": "1"})
    smuggled = staff_client.get(
        f"{URL}explain/{select.queryid}/", {"p1": "'x'; DROP TABLE accounts_user", "explain": "1"}
    )

    assert b"starts with DELETE" in refused_delete.content
    assert refused_delete.context["result"].plan is None
    assert smuggled.context["result"].plan is None
    assert "More than one statement" in smuggled.context["result"].error
    assert b"More than one statement" in smuggled.content
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_user WHERE username = 'still-here'")
        assert cursor.fetchone()[0] == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE accounts_user",
        "select 1 ;; drop table accounts_user",
        "DELETE FROM accounts_user",
        "UPDATE accounts_user SET username = 'x'",
        "WITH gone AS (DELETE FROM accounts_user RETURNING id) SELECT * FROM gone",
        "SELECT * INTO copied FROM accounts_user",
        "EXPLAIN ANALYZE SELECT 1",
        "SELECT 'unterminated",
        "SELECT E'\\'; DROP TABLE accounts_user; --",
        "SELECT 1 /* unclosed",
        "",
    ],
)
def test_only_a_single_read_only_select_or_with_statement_passes(sql):
    with pytest.raises(Refused):
        single_select(sql)


@pytest.mark.parametrize(
    ("sql", "kept"),
    [
        ("SELECT ';' AS semicolon;", "SELECT ';' AS semicolon"),
        ("SELECT $$;DROP TABLE x$$", "SELECT $$;DROP TABLE x$$"),
        ("select 1 -- ; drop table x\n", "select 1"),
        ('SELECT "delete" FROM t FOR UPDATE', 'SELECT "delete" FROM t FOR UPDATE'),
        ("WITH a AS (SELECT 1) SELECT * FROM a FOR NO KEY UPDATE", None),
        ("(SELECT 1) UNION (SELECT 2)", None),
    ],
)
def test_selects_with_semicolons_in_literals_and_comments_pass(sql, kept):
    assert single_select(sql) == (kept if kept is not None else sql)


def test_the_server_refuses_a_second_statement_even_if_the_check_were_fooled(monkeypatch):
    UserFactory(username="still-here")
    monkeypatch.setattr(queries, "single_select", lambda sql: sql)

    with monitor_connection() as conn:
        result = queries.explain(conn, "SELECT 1; DROP TABLE accounts_user", {})

    assert result.plan is None and "multiple commands" in result.error
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_user")
        assert cursor.fetchone()[0] == 1


def test_increments_count_from_zero_when_counters_went_down():
    before = Counters(10, 100.0, 10, 50, 5)
    assert increment(before, Counters(12, 130.0, 12, 60, 5)) == Counters(2, 30.0, 2, 10, 0)
    assert increment(before, Counters(3, 20.0, 3, 9, 1)) == Counters(3, 20.0, 3, 9, 1)  # reset
    assert increment(None, Counters(1, 1.0, 1, 1, 0)) == Counters(1, 1.0, 1, 1, 0)  # new


def test_slow_statements_summary_for_the_overview(settings):
    settings.PERF_SLOW_QUERY_MS = 100
    queries.slow_statements()  # the first snapshot
    run("SELECT pg_sleep(%s)", [0.2])

    slow = queries.slow_statements(window_seconds=3600)
    settings.PERF_SLOW_QUERY_MS = 10_000
    none = queries.slow_statements(window_seconds=3600)

    assert slow.count >= 1 and slow.error is None
    assert slow.level == Level.CRITICAL  # pg_sleep is most of this database's time
    assert none == (0, Level.OK, None)


def test_a_section_that_fails_says_so_and_the_page_still_renders(monkeypatch, staff_client):
    def timed_out(conn):
        raise queries.MonitorError(
            "Reading pg_stat_statements: Timed out after 2000 ms (PERF_STATEMENT_TIMEOUT_MS)."
        )

    monkeypatch.setattr(queries, "read_now", timed_out)

    response = staff_client.get(URL)

    assert response.status_code == 200
    assert b"Timed out after 2000 ms" in response.content
    assert queries.slow_statements().level == Level.UNKNOWN


def test_perf_snapshot_prunes_by_age_and_merges_old_snapshots_into_hourly_ones():
    now = timezone.now()
    hour = (now - timedelta(hours=30)).replace(minute=0, second=0, microsecond=0)

    def snapshot(at, **calls):
        taken = StatementSnapshot.objects.create(
            taken_at=at, stats_reset=now - timedelta(days=30), dealloc=0, statements=len(calls)
        )
        for queryid, count in calls.items():
            StatementDelta.objects.create(
                snapshot=taken, queryid=int(queryid[1:]), calls=count, total_exec_time=count * 1.5,
                rows=count, shared_blks_hit=count, shared_blks_read=0,
            )  # fmt: skip
        return taken

    snapshot(now - timedelta(days=8, minutes=5), q43=1)
    snapshot(now - timedelta(days=8), q42=1)
    merged = [snapshot(hour + timedelta(minutes=m), q42=m // 5) for m in (5, 10, 15)]
    recent = [snapshot(now - timedelta(minutes=m), q42=1) for m in (10, 5)]
    Statement.objects.bulk_create(
        [
            Statement(queryid=42, query="SELECT 42", calls=0, first_seen=now),  # gone, still referenced
            Statement(queryid=43, query="SELECT 43", calls=0, first_seen=now),  # gone, only in pruned ones
        ]
    )
    out = io.StringIO()

    call_command("perf_snapshot", stdout=out)

    kept = list(StatementSnapshot.objects.order_by("id").values_list("id", flat=True))
    assert kept[:3] == [merged[-1].pk, recent[0].pk, recent[1].pk] and len(kept) == 4  # + the new one
    hourly = StatementDelta.objects.get(snapshot=merged[-1], queryid=42)
    assert (hourly.calls, hourly.total_exec_time) == (1 + 2 + 3, 9.0)  # the hour adds up
    assert set(Statement.objects.filter(queryid__in=[42, 43]).values_list("queryid", flat=True)) == {42}
    text = out.getvalue()
    assert "Pruned 2 snapshots older than 7 days" in text and "merged 2 older than 2 h" in text
    assert "removed 1 statement text no longer needed" in text

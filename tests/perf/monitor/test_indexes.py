"""The "Indexes and space" page: tables and their sizes and scans, unused / duplicate / invalid
indexes, the model indexes with the comment naming their query, and suggested indexes proven
with hypopg from the predicates pg_qualstats recorded.

The monitor reads on a connection of its own, which sees only committed rows and DDL: these
tests commit (transaction=True). Indexes they create are dropped, and the one they drop is
built again, because the suite reuses its test database.
"""

from __future__ import annotations

import re
import time

import pytest
from django.db import IntegrityError, connection
from django.test import Client

from messaging.models import Message
from perf.monitor import indexes, suggestions
from perf.monitor.pages import Level
from tests.factories import UserFactory
from tests.synthetic import insert_bounties, insert_conversations

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/admin/perf/indexusage/"


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True))
    return client


@pytest.fixture
def scratch_indexes():
    """Names of indexes a test creates; dropped afterwards, whatever happened."""
    names: list[str] = []
    yield names
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


@pytest.fixture
def bounties():
    """12,000 committed bounties (over PERF_SEQ_SCAN_MIN_ROWS) over 20 owners."""
    owners = [UserFactory().pk for _ in range(20)]
    insert_bounties(count=12_000, owner_ids=owners)
    return owners


def page(client: Client):
    response = client.get(URL)
    assert response.status_code == 200, response.content[:2000]
    return response


def table_html(response, css_class: str) -> str:
    """The HTML of one of the page's tables, found by its class."""
    html = response.content.decode()
    match = re.search(rf'<table class="perf-table {css_class}">(.*?)</table>', html, re.S)
    assert match, f"no table {css_class}"
    return match.group(1)


def row_html(section: str, name: str) -> str | None:
    match = re.search(rf'<tr data-(?:index|table)="{re.escape(name)}">(.*?)</tr>', section, re.S)
    return match.group(1) if match else None


def flush_statistics() -> None:
    """This session's scan counts reach the shared statistics when its transaction ends
    (PostgreSQL 15 otherwise batches them for up to a second)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")


def test_the_page_is_refused_to_non_staff_and_sends_anonymous_users_to_login():
    member = Client()
    member.force_login(UserFactory(is_staff=False))
    anonymous = Client().get(URL)

    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert member.get(URL).status_code == 403


def test_the_page_shows_each_table_with_rows_sizes_scans_and_flags_a_big_table_read_by_seq_scans(
    staff_client, bounties, settings
):
    # Scan counts add up over the whole suite, and other backends flush theirs when they like:
    # any share of sequential scans flags the table here, whatever index scans came before.
    settings.PERF_INDEX_SCAN_MIN_PCT = 100
    with connection.cursor() as cursor:
        for _ in range(3):  # no index on view_count: a sequential scan each time
            cursor.execute("SELECT count(*) FROM bounties_bounty WHERE view_count = 7")
    flush_statistics()

    response = page(staff_client)

    tables = {table["table"]: table for table in response.context["tables"]}
    bounty = tables["bounties_bounty"]
    assert bounty["rows"] == 12_000  # insert_bounties ANALYZEs: the estimate is exact
    assert bounty["table_bytes"] > 1_000_000 and bounty["index_bytes"] > 0
    assert bounty["total_bytes"] >= bounty["table_bytes"] + bounty["index_bytes"] + bounty["toast_bytes"]
    assert bounty["seq_scans"] >= 3 and bounty["level"] == Level.WARNING
    assert bounty["bloat_bytes"] is not None  # analyzed: the estimate has statistics to work from
    row = row_html(table_html(response, "perf-idx-tables"), "bounties_bounty")
    assert "12,000" in row and "perf-level-warning" in row
    assert "bounties_bounty" in [table["table"] for table in response.context["seq_scan_tables"]]
    assert "Timed out" not in response.content.decode()


def test_an_unused_index_shows_as_unused_and_a_duplicate_one_as_duplicate(staff_client, scratch_indexes):
    scratch_indexes += ["test_unused_view_count", "test_dup_owner", "test_twin_a", "test_twin_b"]
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX test_unused_view_count ON bounties_bounty (view_count)")
        # A leading part of bounty_owner_created_idx (owner_id, created_at DESC).
        cursor.execute("CREATE INDEX test_dup_owner ON bounties_bounty (owner_id)")
        # Two identical indexes: one of them (the later name) is the duplicate.
        cursor.execute("CREATE INDEX test_twin_a ON bounties_bounty (location, view_count)")
        cursor.execute("CREATE INDEX test_twin_b ON bounties_bounty (location, view_count)")

    response = page(staff_client)

    unused = table_html(response, "perf-idx-unused")
    assert "test_unused_view_count" in row_html(unused, "test_unused_view_count")
    pairs = response.context["duplicates"]
    duplicates = {pair["index"]["name"]: pair["covered_by"]["name"] for pair in pairs}
    assert duplicates["test_dup_owner"] == "bounty_owner_created_idx"
    assert duplicates["test_twin_b"] == "test_twin_a" and "test_twin_a" not in duplicates
    duplicate_rows = table_html(response, "perf-idx-duplicates")
    assert "bounty_owner_created_idx" in row_html(duplicate_rows, "test_dup_owner")
    # Nobody declares them: they are listed as indexes no model declares, on Bounty's table.
    undeclared = table_html(response, "perf-idx-undeclared")
    assert "bounties.Bounty" in row_html(undeclared, "test_unused_view_count")
    assert "bounty_status_created_idx" not in undeclared  # declared in Meta.indexes

    # Django's own many-to-many tables repeat their foreign key in their unique index: shown,
    # marked, and left out of the counts (their migrations own them).
    auth = row_html(duplicate_rows, "auth_permission_content_type_id_2f476e4b")
    assert auth and "Django's own" in auth

    problems = indexes.index_problems()
    ours = [pair for pair in pairs if not pair["index"]["packaged"]]
    assert problems["unused"]["count"] >= 1 and problems["unused"]["level"] == Level.WARNING
    assert problems["duplicate"]["count"] == len(ours) >= 2
    assert problems["duplicate"]["level"] == Level.WARNING
    assert "on Django's own tables, not counted" in problems["duplicate"]["summary"]
    assert problems["error"] is None and problems["url"] == URL


def test_a_failed_concurrent_unique_index_shows_as_invalid(staff_client, bounties, scratch_indexes):
    scratch_indexes.append("test_invalid_status")
    with pytest.raises(IntegrityError, match="could not create unique index"), connection.cursor() as cursor:
        # Thousands of bounties share a status: the build fails and leaves an invalid index.
        cursor.execute("CREATE UNIQUE INDEX CONCURRENTLY test_invalid_status ON bounties_bounty (status)")

    response = page(staff_client)

    row = row_html(table_html(response, "perf-idx-invalid"), "test_invalid_status")
    assert row and "perf-level-critical" in row and "invalid" in row
    assert "test_invalid_status" not in [index["name"] for index in response.context["unused"]]
    problems = indexes.index_problems()
    assert problems["invalid"]["count"] == 1 and problems["invalid"]["level"] == Level.CRITICAL


def test_model_indexes_are_listed_with_the_comment_that_names_their_query(staff_client, bounties):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM bounties_bounty WHERE status = 'open' ORDER BY created_at DESC LIMIT 5"
        )
    flush_statistics()

    response = page(staff_client)

    rows = {row["declared"].name: row for row in response.context["model_indexes"]}
    status_created = rows["bounty_status_created_idx"]
    assert status_created["declared"].model == "bounties.Bounty"
    assert status_created["declared"].comment == (
        "bounty list: status filter (default open), newest first, cursor on created_at"
    )
    assert rows["message_conv_created_idx"]["declared"].comment == (
        "a conversation's messages, newest first (messages page, unread counts)"
    )
    assert rows["bounty_search_gin"]["declared"].comment.startswith("guide: full-text over title")
    assert status_created["index"]["scans"] >= 1 and status_created["state"] == "used"
    html = table_html(response, "perf-idx-models")
    assert "a user&#x27;s ledger filtered by type" in row_html(html, "wallettx_user_type_idx")


def test_index_comments_are_read_from_the_model_source_lines_right_above_each_entry():
    comments = indexes.index_comments(Message)

    assert comments["message_created_idx"][0] == (
        "guide: messages(created_at desc); recent activity across conversations, admin"
    )
    assert comments["message_created_idx"][1].startswith("models.Index(")


@pytest.mark.parametrize("texts", ["sampled", "normalised"])
def test_a_dropped_index_is_suggested_back_proven_cheaper_with_its_create_statement(
    staff_client, texts, monkeypatch
):
    if texts == "normalised":
        # pg_qualstats keeps one example per query and may have evicted it: then the proof
        # plans pg_stat_statements' text ($1, $2) generically.
        monkeypatch.setattr(
            suggestions,
            "EXAMPLES_AND_STATEMENTS_SQL",
            suggestions.EXAMPLES_AND_STATEMENTS_SQL.replace("pg_qualstats_example_query(q.queryid)", "NULL"),
        )
    index = next(index for index in Message._meta.indexes if index.name == "message_conv_created_idx")
    users = [UserFactory().pk for _ in range(30)]
    pairs = [(a, b) for position, a in enumerate(users) for b in users[position + 1 :]][:300]
    conversations = insert_conversations(pairs=pairs, messages_each=150)  # 45,000 messages
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX {index.name}")
            cursor.execute("ANALYZE messaging_message")
            # Earlier tests of the run filtered messages too (unread counts, pages): their
            # predicates would join this candidate's queries. pg_qualstats resets only as a
            # whole; sampled predicates are all it holds.
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_qualstats")
            cursor.execute("SELECT pg_qualstats_reset()")
        # A conversation's messages page, as the API asks for it: pg_qualstats records the
        # predicate (conversation_id = ...) filtering rows after a scan of another index.
        for _ in range(20):
            list(Message.objects.filter(conversation_id=conversations[7]).order_by("-created_at")[:20])

        response = page(staff_client)

        suggested = response.context["suggested"]
        assert suggested.problems == [] and suggested.error is None, suggested.problems
        found = [s for s in suggested.suggestions if s.candidate.table == "messaging_message"]
        assert found, [(c.table, c.columns, reason) for c, reason in suggested.rejected]
        suggestion = found[0]
        # The dropped index itself: the filter column, then the order the page reads in.
        assert suggestion.candidate.label == "conversation_id, created_at DESC"
        assert suggestion.after < suggestion.before * 0.8
        assert suggestion.statement.startswith('CREATE INDEX CONCURRENTLY "')
        assert '"public"."messaging_message" ("conversation_id", "created_at" DESC);' in suggestion.statement
        assert suggestion.model_line.startswith('models.Index(fields=["conversation", "-created_at"]')
        query = suggestion.queries[0]
        assert '"messaging_message"."conversation_id" = ' in query.query.text and query.uses_index
        assert query.query.sampled == (texts == "sampled")
        assert ("$1" in query.query.text) == (texts == "normalised")
        html = response.content.decode()
        assert 'data-table="messaging_message" data-columns="conversation_id,created_at"' in html
        assert "CREATE INDEX CONCURRENTLY" in html
        # Nothing hypothetical outlives the page, and nothing was built.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'messaging_message' "
                "AND indexdef LIKE '%%(conversation_id)%%'"
            )
            assert cursor.fetchone()[0] == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX IF EXISTS {index.name}")
        with connection.schema_editor() as editor:
            editor.add_index(Message, index)


def test_missing_extensions_are_named_with_how_to_get_them(staff_client, monkeypatch):
    # A server without the packages and without the preload: the page says what to do.
    monkeypatch.setattr(
        suggestions,
        "STATUS_SQL",
        "SELECT want.name, false AS available, false AS installed, 'pg_stat_statements' AS preload, "
        "15 AS major FROM unnest(%s::text[]) AS want(name)",
    )

    response = page(staff_client)

    suggested = response.context["suggested"]
    assert not suggested.ready and suggested.suggestions == []
    html = response.content.decode()
    assert "apt-get install postgresql-15-hypopg" in html
    assert "apt-get install postgresql-15-pg-qualstats" in html
    assert "shared_preload_libraries" in html


def test_a_section_that_times_out_says_so_and_the_page_still_renders(staff_client, settings, monkeypatch):
    # Long enough for the page's other sections on a busy machine, far shorter than the sleeps.
    settings.PERF_STATEMENT_TIMEOUT_MS = 1500
    monkeypatch.setattr(indexes, "TABLE_BLOAT_SQL", "SELECT pg_sleep(30)")
    monkeypatch.setattr(indexes, "INDEXES_SQL", "SELECT pg_sleep(30)")

    started = time.monotonic()
    response = page(staff_client)

    assert time.monotonic() - started < 20
    assert "Timed out after 1500 ms" in response.content.decode()
    assert response.context["tables"]  # the other sections are there
    # What could not be read is grey, never a reassuring green zero.
    unused = response.context["problems"]["unused"]
    assert unused["count"] is None and unused["level"] == Level.UNKNOWN
    assert response.context["problems"]["seq_scan_tables"]["count"] is not None


def test_zero_scans_are_dated_from_the_last_statistics_reset(staff_client):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_reset()")  # this (test) database's counters only

    response = page(staff_client)

    assert "ago)" in response.context["stats_since"]
    assert response.context["stats_since"] in response.content.decode()
    assert indexes.index_problems()["stats_reset"] is not None

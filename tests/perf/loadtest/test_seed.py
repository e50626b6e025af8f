from __future__ import annotations

import hashlib
import io
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import User
from bounties.models import Bounty, BountyRequest, BountyStatus, RequestStatus
from core.db.maintenance import maintenance_statement_timeout
from messaging.models import Conversation, Message
from perf.loadtest.seed import SEED_USER_PASSWORD
from tests.conftest import ledger_is_consistent
from tests.factories import UserFactory
from wallet.models import TransactionType, WalletTransaction

pytestmark = pytest.mark.django_db

SMALL = ["--users", "120", "--bounties", "1500", "--transactions", "12000", "--messages", "6000",
         "--conversations", "400", "--tokens", "30"]  # fmt: skip


def seed(tmp_path, *extra: str) -> None:
    call_command("seed_data", *SMALL, "--tokens-file", str(tmp_path / "tokens.txt"), *extra)


def fingerprint() -> str:
    rows = Bounty.objects.order_by("created_at", "title").values_list("title", "amount", "status", "category")
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()


@contextmanager
def statements_outlasting_a_short_timeout(kinds=("INSERT",), touching="", slowed_statements=3):
    """A machine slow enough for the API's timeout to bite, on any machine: the connection gets a
    1 s statement_timeout and the first few statements of ``kinds`` (that name ``touching``) are
    each preceded by a 1.5 s pg_sleep in the same transaction, which only passes under the
    command's longer timeout (the statement that sets that timeout is not slowed). A 1 ms
    timeout did the same until a busy CI machine took longer than that for a SAVEPOINT.
    Yields the kinds of the statements it slowed."""
    slowed: list[str] = []

    def sleep_first(execute, sql, params, many, context):
        kind = sql.lstrip().split(None, 1)[0].upper()
        chosen = kind in kinds and touching in sql and "set_config" not in sql
        if chosen and len(slowed) < slowed_statements:
            slowed.append(kind)
            context["cursor"].cursor.execute("SELECT pg_sleep(1.5)")  # raw: no wrapper again
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '1s'")
    try:
        with connection.execute_wrapper(sleep_first):
            yield slowed
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")


def test_seed_keeps_every_wallet_invariant_and_covers_every_status(tmp_path):
    seed(tmp_path)

    assert ledger_is_consistent()
    assert Bounty.objects.count() == 1500
    assert set(Bounty.objects.values_list("status", flat=True)) == set(BountyStatus)
    assert set(WalletTransaction.objects.values_list("type", flat=True)) == set(TransactionType)
    assert 11_000 <= WalletTransaction.objects.count() <= 13_000
    assert 5_000 <= Message.objects.count() <= 7_000
    assert Conversation.objects.count() == 400
    worked = Bounty.objects.filter(hunter__isnull=False).count()
    assert BountyRequest.objects.filter(status=RequestStatus.ACCEPTED).count() == worked


def test_seeded_text_answers_the_load_test_searches(tmp_path):
    seed(tmp_path)
    client = APIClient()

    for term in ["web", "mobile", "design", "data", "test"]:
        results = client.get("/api/bounties/search", {"q": term}).json()["results"]
        assert results, term
        assert results == sorted(results, key=lambda row: -row["rank"])


def test_seeded_tokens_and_passwords_work(tmp_path):
    seed(tmp_path)
    lines = (tmp_path / "tokens.txt").read_text().splitlines()
    user_id, token = lines[0].split()
    client = APIClient()

    assert len(lines) == 30
    assert client.get("/api/me", HTTP_AUTHORIZATION=f"Bearer {token}").json()["id"] == int(user_id)
    username = client.get(f"/api/profiles/{user_id}").json()["username"]
    login = client.post(
        "/api/auth/token", {"username": username, "password": SEED_USER_PASSWORD}, format="json"
    )
    assert login.status_code == 200


def test_same_seed_gives_the_same_data(tmp_path):
    seed(tmp_path, "--seed", "7")
    first = fingerprint()
    seed(tmp_path, "--seed", "7", "--reset")
    again = fingerprint()
    seed(tmp_path, "--seed", "8", "--reset")

    assert first == again
    assert fingerprint() != first


def test_refuses_a_database_with_data_unless_told(tmp_path):
    UserFactory()

    with pytest.raises(CommandError, match="already has data"):
        seed(tmp_path)
    seed(tmp_path, "--append", "--prefix", "extra")

    assert Bounty.objects.count() == 1500
    assert ledger_is_consistent()


def test_reset_says_it_deleted_the_demo_users_and_how_to_get_them_back(tmp_path):
    call_command("load_demo", stdout=io.StringIO())
    out = io.StringIO()

    call_command("seed_data", *SMALL, "--tokens-file", str(tmp_path / "tokens.txt"), "--reset", stdout=out)

    assert not User.objects.filter(username__in=["alice", "bob", "carol"]).exists()
    assert "--reset deleted the demo users (alice, bob, carol)" in out.getvalue()
    assert "`manage.py load_demo` (or the next `make run`) brings them back" in out.getvalue()
    call_command("load_demo", stdout=io.StringIO())
    assert User.objects.filter(username__in=["alice", "bob", "carol"]).count() == 3
    assert ledger_is_consistent()


def test_reset_keeps_staff_users(tmp_path):
    staff = UserFactory(is_staff=True)
    seed(tmp_path)

    seed(tmp_path, "--reset")

    assert Bounty.objects.count() == 1500
    assert type(staff).objects.filter(pk=staff.pk).exists()


def test_seed_runs_its_bulk_sql_past_the_api_statement_timeout_and_restores_it(tmp_path):
    """A slow machine made the API's statement_timeout cancel seed_data's bulk inserts."""
    with statements_outlasting_a_short_timeout() as slowed:
        seed(tmp_path)

        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "1s"  # what the connection had before, not the seed's
    assert slowed == ["INSERT", "INSERT", "INSERT"]
    assert Bounty.objects.count() == 1500


@pytest.mark.django_db(transaction=True)
def test_the_maintenance_timeout_leaves_no_session_setting_behind():
    """Behind PgBouncer (transaction mode) a session-level SET would go on to another client:
    the longer timeout is a SET LOCAL, gone with the maintenance transaction."""
    timeout = "SELECT setting, source FROM pg_settings WHERE name = 'statement_timeout'"
    with connection.cursor() as cursor:
        cursor.execute(timeout)
        before = cursor.fetchone()

    with maintenance_statement_timeout(), connection.cursor() as cursor:
        cursor.execute(timeout)
        inside = cursor.fetchone()

    with connection.cursor() as cursor:
        cursor.execute(timeout)
        after = cursor.fetchone()
    # SET LOCAL shows as "session" while it lasts; after it, the connection's startup option.
    assert inside == (str(settings.MAINTENANCE_STATEMENT_TIMEOUT_MS), "session")
    assert after == before == (str(settings.DATABASE_STATEMENT_TIMEOUT_MS), "client")


def test_check_ledger_runs_past_the_api_statement_timeout(tmp_path):
    seed(tmp_path)

    out = io.StringIO()
    # The ledger's own queries, not the command's check of the migrations before them.
    with statements_outlasting_a_short_timeout(kinds=("SELECT",), touching="wallet_") as slowed:
        call_command("check_ledger", stdout=out)

    assert slowed == ["SELECT", "SELECT"]  # both of its checks
    assert "ledger OK" in out.getvalue()

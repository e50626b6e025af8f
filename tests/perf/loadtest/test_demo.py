from __future__ import annotations

import pytest
from django.core.management import call_command

from accounts.models import User
from bounties.models import Bounty, BountyRequest, BountyStatus
from messaging.models import Conversation, Message
from perf.loadtest.demo import DEMO_USER_PASSWORD
from tests.conftest import client_for, ledger_is_consistent
from wallet.models import TransactionType, WalletTransaction

pytestmark = pytest.mark.django_db


def test_demo_data_covers_every_status_keeps_the_ledger_and_loads_twice_safely(capsys):
    call_command("load_demo", "--admin-password", "pw-for-test")
    call_command("load_demo", "--admin-password", "pw-for-test")

    assert set(Bounty.objects.values_list("status", flat=True)) == set(BountyStatus)
    assert Bounty.objects.count() == 6
    assert BountyRequest.objects.exists()
    assert set(WalletTransaction.objects.values_list("type", flat=True)) == set(TransactionType)
    worked = Bounty.objects.filter(hunter__isnull=False)
    assert set(Conversation.objects.values_list("bounty_id", flat=True)) == set(
        worked.values_list("pk", flat=True)
    )
    assert Message.objects.count() == 3 * worked.count()
    assert ledger_is_consistent()
    out = capsys.readouterr().out
    assert "staff user: admin, password from --admin-password" in out


def test_demo_logins_are_named_but_no_password_reaches_the_log(capsys, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "chosen-Admin-pw-77")

    call_command("load_demo")

    out = capsys.readouterr().out
    assert "password from $DEMO_ADMIN_PASSWORD" in out
    assert "alice, bob, carol" in out
    assert "chosen-Admin-pw-77" not in out
    assert DEMO_USER_PASSWORD not in out
    assert User.objects.get(username="admin").check_password("chosen-Admin-pw-77")


def test_loading_the_demo_again_keeps_the_demo_users_signed_in():
    call_command("load_demo", "--admin-password", "pw-for-test")
    client = client_for(User.objects.get(username="alice"))

    call_command("load_demo", "--admin-password", "pw-for-test")  # what every `make run` does

    assert client.get("/api/me").status_code == 200

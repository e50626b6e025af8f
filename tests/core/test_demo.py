from __future__ import annotations

import pytest
from django.core.management import call_command

from bounties.models import Bounty, BountyRequest, BountyStatus
from messaging.models import Conversation, Message
from tests.conftest import ledger_is_consistent
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
    assert "admin / pw-for-test" in capsys.readouterr().out

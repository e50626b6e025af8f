from __future__ import annotations

import pytest
from django.core.management import call_command

from bounties.models import Bounty, BountyRequest, BountyStatus
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
    assert ledger_is_consistent()
    assert "admin / pw-for-test" in capsys.readouterr().out

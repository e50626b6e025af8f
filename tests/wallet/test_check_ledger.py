from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F

from tests.factories import application, funded_user, paid_bounty
from wallet.models import WalletAccount

pytestmark = pytest.mark.django_db


def test_check_ledger_passes_on_a_consistent_ledger(capsys):
    bounty = paid_bounty(amount="40.00")
    application(bounty)

    call_command("check_ledger")

    assert "ledger OK" in capsys.readouterr().out


def test_check_ledger_fails_naming_the_user_whose_balance_drifted(capsys):
    honest = funded_user("10.00")
    drifted = funded_user("10.00")
    WalletAccount.objects.filter(user=drifted).update(balance=F("balance") + Decimal("0.01"))

    with pytest.raises(CommandError, match="1 user"):
        call_command("check_ledger")

    err = capsys.readouterr().err
    assert f"user {drifted.pk}:" in err
    assert f"user {honest.pk}:" not in err

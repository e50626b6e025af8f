"""wallet.services' own rules: the ledger keeps each movement's Idempotency-Key and never applies
one twice, escrow moves only inside the bounty's transaction, and the other apps reach the
wallet through its services and selectors only."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from bounties.models import Bounty
from core.models import IdempotencyRecord
from tests.conftest import assert_error, client_for
from tests.factories import funded_user
from wallet import services
from wallet.models import WalletAccount, WalletTransaction

pytestmark = pytest.mark.django_db


def test_each_movement_keeps_the_idempotency_key_it_came_with():
    user = funded_user("100.00")
    client = client_for(user)

    client.post("/api/wallet/withdrawals", {"amount": "10.00"}, format="json", HTTP_IDEMPOTENCY_KEY="w-1")
    client.post("/api/wallet/withdrawals", {"amount": "10.00"}, format="json")

    withdrawals = WalletTransaction.objects.filter(user=user, type="withdrawal")
    assert sorted(withdrawals.values_list("idempotency_key", flat=True)) == ["", "w-1"]


def test_the_ledger_refuses_a_key_spent_before_its_stored_response_was_purged():
    """purge_idempotency_keys drops stored responses after their retention; a client that
    retries that late must still not be paid twice."""
    user = funded_user("100.00")
    client = client_for(user)
    withdraw = {"path": "/api/wallet/withdrawals", "data": {"amount": "10.00"}, "format": "json"}
    first = client.post(**withdraw, HTTP_IDEMPOTENCY_KEY="late")
    IdempotencyRecord.objects.filter(user=user).delete()

    retry = client.post(**withdraw, HTTP_IDEMPOTENCY_KEY="late")
    deposit = client.post(
        "/api/wallet/deposits",
        {"amount": "5.00", "reference": "psp-late"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="late",
    )

    assert first.status_code == 201
    assert_error(retry, 422, "idempotency_key_reused")
    assert_error(deposit, 422, "idempotency_key_reused")
    assert WalletAccount.objects.get(user=user).balance == Decimal("90.00")
    assert WalletTransaction.objects.filter(user=user, idempotency_key="late").count() == 1


def test_a_duplicate_reference_is_still_a_duplicate_reference_with_a_fresh_key():
    user = funded_user("0.00")
    client = client_for(user)
    deposit = {"amount": "5.00", "reference": "psp-once"}
    client.post("/api/wallet/deposits", deposit, format="json", HTTP_IDEMPOTENCY_KEY="d-1")

    again = client.post("/api/wallet/deposits", deposit, format="json", HTTP_IDEMPOTENCY_KEY="d-2")

    assert_error(again, 409, "duplicate_reference")
    assert WalletAccount.objects.get(user=user).balance == Decimal("5.00")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("move", ["escrow_hold", "escrow_release", "escrow_refund"])
def test_escrow_moves_refuse_to_run_outside_a_transaction(move):
    owner = funded_user("100.00")
    bounty = Bounty.objects.create(owner=owner, title="Outside", description="d", amount=Decimal("10.00"))
    arguments = {"escrow_hold": {"owner_id": owner.pk}, "escrow_refund": {"owner_id": owner.pk}}

    with pytest.raises(RuntimeError, match="inside the bounty's transaction"):
        getattr(services, move)(bounty=bounty, **arguments.get(move, {"hunter_id": owner.pk}))

    assert not WalletTransaction.objects.filter(bounty=bounty).exists()
    assert WalletAccount.objects.get(user=owner).balance == Decimal("100.00")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("app", ["accounts", "bounties", "messaging"])
def test_other_apps_reach_the_wallet_through_its_services_and_selectors_only(app):
    """The wallet's tables are the wallet's: another app that needs money figures asks
    wallet.selectors (total_earned, wallet_summary) or moves money through wallet.services."""
    allowed = ("wallet.services", "wallet.selectors", "wallet.serializers")
    reached = {
        f"{path.relative_to(settings.BASE_DIR)}: {name}"
        for path in (Path(settings.BASE_DIR) / app).rglob("*.py")
        if "migrations" not in path.parts
        for name in _imports(path)
        if name.startswith("wallet.") and not name.startswith(allowed)
    }

    assert reached == set()

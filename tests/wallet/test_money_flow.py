"""The whole marketplace money path through the API, checking the ledger after every step."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.conftest import assert_error, ledger_is_consistent
from tests.factories import bounty_data
from wallet.models import TransactionType, WalletTransaction

pytestmark = pytest.mark.django_db

PASSWORD = "orbit-Lattice-42"


def signed_up(username: str) -> APIClient:
    """A user created the way a client does it: register, then log in."""
    client = APIClient()
    created = client.post(
        "/api/auth/register",
        {"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        format="json",
    )
    assert created.status_code == 201
    token = client.post("/api/auth/token", {"username": username, "password": PASSWORD}, format="json")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['token']}")
    client.user_id = created.json()["id"]
    return client


def wallet_of(client) -> dict[str, Decimal]:
    body = client.get("/api/wallet").json()
    return {name: Decimal(value) for name, value in body.items()}


def test_paid_bounty_from_deposit_to_completion():
    owner = signed_up("owner_olga")
    hunter = signed_up("hunter_hugo")
    rival = signed_up("rival_rita")

    deposit = owner.post("/api/wallet/deposits", {"amount": "100.00", "reference": "psp-0001"}, format="json")
    assert deposit.status_code == 201
    assert wallet_of(owner) == {"balance": Decimal("100.00"), "pending": 0, "available": Decimal("100.00")}
    assert ledger_is_consistent()

    created = owner.post("/api/bounties", bounty_data(amount="80.00"), format="json")
    assert created.status_code == 201
    bounty_id = created.json()["id"]
    assert created.json()["amount"] == "80.00"
    assert wallet_of(owner) == {
        "balance": Decimal("100.00"),
        "pending": Decimal("80.00"),
        "available": Decimal("20.00"),
    }
    assert ledger_is_consistent()

    message = {"message": "I build React sites every week; here is my portfolio and plan. " * 2}
    mine = hunter.post(f"/api/bounties/{bounty_id}/requests", message, format="json")
    theirs = rival.post(f"/api/bounties/{bounty_id}/requests", message, format="json")
    assert (mine.status_code, theirs.status_code) == (201, 201)

    accepted = owner.post(f"/api/requests/{mine.json()['id']}/accept")
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted"
    assert rival.get("/api/requests").json()["results"][0]["status"] == "rejected"
    detail = owner.get(f"/api/bounties/{bounty_id}").json()
    assert (detail["status"], detail["hunter_id"]) == ("in_progress", hunter.user_id)
    assert ledger_is_consistent()

    completed = owner.post(f"/api/bounties/{bounty_id}/complete")
    assert completed.status_code == 200
    assert completed.json()["status"] == "completed"
    assert wallet_of(hunter) == {"balance": Decimal("76.00"), "pending": 0, "available": Decimal("76.00")}
    assert wallet_of(owner) == {"balance": Decimal("20.00"), "pending": 0, "available": Decimal("20.00")}
    rows = WalletTransaction.objects.filter(bounty_id=bounty_id).order_by("id")
    assert [(row.type, row.amount) for row in rows] == [
        (TransactionType.ESCROW, Decimal("-80.00")),
        (TransactionType.RELEASE, Decimal("80.00")),
        (TransactionType.FEE, Decimal("-4.00")),
    ]
    assert ledger_is_consistent()

    hunter_ledger = hunter.get("/api/wallet/transactions").json()["results"]
    assert [(row["type"], row["amount"]) for row in hunter_ledger] == [("fee", "-4.00"), ("release", "80.00")]


def test_cancel_refunds_the_owner_and_rejects_pending_applications():
    owner = signed_up("owner_omar")
    hunter = signed_up("hunter_hana")
    owner.post("/api/wallet/deposits", {"amount": "50.00", "reference": "psp-0002"}, format="json")
    bounty_id = owner.post("/api/bounties", bounty_data(amount="45.50"), format="json").json()["id"]
    assert wallet_of(owner)["available"] == Decimal("4.50")
    message = {"message": "Available this week, fixed price as posted, happy to start today. " * 2}
    applied = hunter.post(f"/api/bounties/{bounty_id}/requests", message, format="json")

    cancelled = owner.post(f"/api/bounties/{bounty_id}/cancel")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert wallet_of(owner) == {"balance": Decimal("50.00"), "pending": 0, "available": Decimal("50.00")}
    assert hunter.get("/api/requests").json()["results"][0]["id"] == applied.json()["id"]
    assert hunter.get("/api/requests").json()["results"][0]["status"] == "rejected"
    assert ledger_is_consistent()

    archived = owner.post(f"/api/bounties/{bounty_id}/archive")
    assert archived.json()["status"] == "archived"


def test_cancel_in_progress_refunds_and_pays_the_hunter_nothing():
    owner = signed_up("owner_ola")
    hunter = signed_up("hunter_hal")
    owner.post("/api/wallet/deposits", {"amount": "30.00", "reference": "psp-0003"}, format="json")
    bounty_id = owner.post("/api/bounties", bounty_data(amount="30.00"), format="json").json()["id"]
    message = {"message": "Can start right away and finish by Friday, with tests and docs. " * 2}
    request_id = hunter.post(f"/api/bounties/{bounty_id}/requests", message, format="json").json()["id"]
    owner.post(f"/api/requests/{request_id}/accept")

    assert owner.post(f"/api/bounties/{bounty_id}/cancel").status_code == 200

    assert wallet_of(owner)["available"] == Decimal("30.00")
    assert wallet_of(hunter)["balance"] == 0
    assert ledger_is_consistent()


def test_a_paid_bounty_from_someone_who_never_deposited_is_refused_with_a_zero_balance():
    owner = signed_up("owner_never_paid")

    response = owner.post("/api/bounties", bounty_data(amount="5.00"), format="json")

    error = assert_error(response, 400, "insufficient_funds")
    assert error["message"] == "This bounty needs 5.00 in escrow; your available balance is 0.00."
    assert not WalletTransaction.objects.exists()
    assert ledger_is_consistent()


def test_paid_bounty_without_enough_balance_is_refused_and_creates_nothing():
    owner = signed_up("owner_poor")
    owner.post("/api/wallet/deposits", {"amount": "10.00", "reference": "psp-0004"}, format="json")

    response = owner.post("/api/bounties", bounty_data(amount="10.01"), format="json")

    assert_error(response, 400, "insufficient_funds")
    assert owner.get(f"/api/bounties?owner={owner.user_id}").json()["results"] == []
    assert wallet_of(owner)["available"] == Decimal("10.00")
    assert not WalletTransaction.objects.filter(type=TransactionType.ESCROW).exists()
    assert ledger_is_consistent()


def test_bounty_for_honor_needs_no_money():
    owner = signed_up("owner_honor")

    response = owner.post("/api/bounties", bounty_data(amount="0.00", is_for_honor=True), format="json")

    assert response.status_code == 201
    assert response.json()["is_for_honor"] is True
    assert not WalletTransaction.objects.exists()


def test_delete_refunds_escrow_and_hides_the_bounty():
    owner = signed_up("owner_del")
    owner.post("/api/wallet/deposits", {"amount": "25.00", "reference": "psp-0005"}, format="json")
    bounty_id = owner.post("/api/bounties", bounty_data(amount="25.00"), format="json").json()["id"]

    assert owner.delete(f"/api/bounties/{bounty_id}").status_code == 204

    assert_error(owner.get(f"/api/bounties/{bounty_id}"), 404, "not_found")
    assert wallet_of(owner) == {"balance": Decimal("25.00"), "pending": 0, "available": Decimal("25.00")}
    assert ledger_is_consistent()

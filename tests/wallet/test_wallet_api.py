from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError
from django.db.models import F

from tests.conftest import assert_error, client_for, ledger_is_consistent
from tests.factories import UserFactory, funded_user
from wallet.models import TransactionType, WalletAccount, WalletTransaction

pytestmark = pytest.mark.django_db


def balance_of(user) -> Decimal:
    return WalletAccount.objects.get(user=user).balance


def test_new_user_wallet_is_empty(user_client):
    assert user_client.get("/api/wallet").json() == {
        "balance": "0.00",
        "pending": "0.00",
        "available": "0.00",
    }


def test_wallet_needs_authentication(api_client):
    assert_error(api_client.get("/api/wallet"), 401, "not_authenticated")
    assert_error(api_client.get("/api/wallet/transactions"), 401, "not_authenticated")


def test_deposit_credits_once_per_provider_reference(user, user_client):
    first = user_client.post(
        "/api/wallet/deposits", {"amount": "40.00", "reference": "psp-abc"}, format="json"
    )
    replayed = user_client.post(
        "/api/wallet/deposits", {"amount": "40.00", "reference": "psp-abc"}, format="json"
    )

    assert first.status_code == 201
    assert first.json()["amount"] == "40.00"
    assert_error(replayed, 409, "duplicate_reference")
    assert balance_of(user) == Decimal("40.00")
    assert WalletTransaction.objects.filter(type=TransactionType.DEPOSIT).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "0.00", "reference": "psp-1"}, "amount"),
        ({"amount": "-5.00", "reference": "psp-1"}, "amount"),
        ({"amount": "1.001", "reference": "psp-1"}, "amount"),
        ({"amount": "lots", "reference": "psp-1"}, "amount"),
        ({"amount": "5.00", "reference": "no spaces allowed"}, "reference"),
        ({"amount": "5.00"}, "reference"),
    ],
)
def test_bad_deposit_is_rejected_and_changes_nothing(user_client, body, field):
    error = assert_error(
        user_client.post("/api/wallet/deposits", body, format="json"), 400, "validation_error"
    )

    assert field in error["fields"]
    assert not WalletTransaction.objects.exists()


def test_withdrawal_debits_at_once_and_is_completed():
    user = funded_user("50.00")
    client = client_for(user)

    response = client.post("/api/wallet/withdrawals", {"amount": "20.00"}, format="json")

    assert response.status_code == 201
    assert (response.json()["type"], response.json()["amount"], response.json()["status"]) == (
        "withdrawal",
        "-20.00",
        "completed",
    )
    assert balance_of(user) == Decimal("30.00")
    assert ledger_is_consistent()


def test_withdrawal_below_minimum_is_rejected_and_changes_nothing():
    user = funded_user("50.00")

    response = client_for(user).post("/api/wallet/withdrawals", {"amount": "9.99"}, format="json")

    assert_error(response, 400, "withdrawal_below_minimum")
    assert balance_of(user) == Decimal("50.00")
    assert not WalletTransaction.objects.filter(type=TransactionType.WITHDRAWAL).exists()


def test_withdraw_more_than_balance_is_rejected_and_changes_nothing():
    user = funded_user("50.00")

    response = client_for(user).post("/api/wallet/withdrawals", {"amount": "50.01"}, format="json")

    assert_error(response, 400, "insufficient_funds")
    assert balance_of(user) == Decimal("50.00")
    assert not WalletTransaction.objects.filter(type=TransactionType.WITHDRAWAL).exists()


def test_each_user_sees_only_their_own_wallet_and_ledger():
    rich = funded_user("500.00")
    other = UserFactory()
    other_client = client_for(other)

    assert other_client.get("/api/wallet").json()["balance"] == "0.00"
    assert other_client.get("/api/wallet/transactions").json()["results"] == []
    assert client_for(rich).get("/api/wallet").json()["balance"] == "500.00"


def test_transactions_filter_by_type_and_paginate_with_cursor():
    user = funded_user("100.00")
    client = client_for(user)
    for _ in range(3):
        client.post("/api/wallet/withdrawals", {"amount": "10.00"}, format="json")

    page = client.get("/api/wallet/transactions?type=withdrawal&limit=2").json()
    rest = client.get(page["next"]).json()

    assert [row["type"] for row in page["results"] + rest["results"]] == ["withdrawal"] * 3
    assert rest["next"] is None
    assert_error(client.get("/api/wallet/transactions?type=bogus"), 400, "validation_error")


def test_page_size_is_capped_at_100():
    user = funded_user("0.00")
    WalletAccount.objects.create(user=user, balance=Decimal("0"))
    WalletTransaction.objects.bulk_create(
        WalletTransaction(user=user, type=TransactionType.DEPOSIT, amount=Decimal("1.00"), reference=f"r{i}")
        for i in range(105)
    )

    page = client_for(user).get("/api/wallet/transactions?limit=500").json()

    assert len(page["results"]) == 100
    assert page["next"] is not None


def test_database_refuses_a_negative_balance_even_if_code_tried():
    user = funded_user("5.00")
    with pytest.raises(IntegrityError):
        WalletAccount.objects.filter(user=user).update(balance=F("balance") - Decimal("5.01"))

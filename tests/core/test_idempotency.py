from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.models import IdempotencyRecord
from tests.conftest import assert_error, client_for
from tests.factories import UserFactory, bounty_data, funded_user
from wallet.models import WalletAccount, WalletTransaction

pytestmark = pytest.mark.django_db

DEPOSIT = {"amount": "25.00", "reference": "psp-idem-1"}


def test_repeat_with_same_key_and_body_replays_the_first_response_and_changes_nothing(user, user_client):
    first = user_client.post("/api/wallet/deposits", DEPOSIT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = user_client.post("/api/wallet/deposits", DEPOSIT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert WalletTransaction.objects.count() == 1
    assert WalletAccount.objects.get(user=user).balance == Decimal("25.00")


def test_same_key_with_a_different_body_is_422_and_changes_nothing(user, user_client):
    user_client.post("/api/wallet/deposits", DEPOSIT, format="json", HTTP_IDEMPOTENCY_KEY="k-2")

    response = user_client.post(
        "/api/wallet/deposits", {**DEPOSIT, "amount": "99.00"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )

    assert_error(response, 422, "idempotency_key_reused")
    assert WalletAccount.objects.get(user=user).balance == Decimal("25.00")


def test_same_key_on_another_endpoint_is_422():
    user = funded_user("100.00")
    client = client_for(user)
    client.post("/api/wallet/withdrawals", {"amount": "10.00"}, format="json", HTTP_IDEMPOTENCY_KEY="k-3")

    response = client.post("/api/bounties", bounty_data(), format="json", HTTP_IDEMPOTENCY_KEY="k-3")

    assert_error(response, 422, "idempotency_key_reused")
    assert WalletAccount.objects.get(user=user).balance == Decimal("90.00")


def test_keys_are_scoped_per_user():
    alice, bob = UserFactory(), UserFactory()

    a = client_for(alice).post("/api/wallet/deposits", DEPOSIT, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    b = client_for(bob).post(
        "/api/wallet/deposits",
        {**DEPOSIT, "reference": "psp-idem-2"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="shared",
    )

    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in b
    assert WalletAccount.objects.get(user=bob).balance == Decimal("25.00")


def test_a_failed_request_stores_nothing_and_can_be_retried():
    user = funded_user("5.00")
    client = client_for(user)
    refused = client.post(
        "/api/wallet/withdrawals", {"amount": "10.00"}, format="json", HTTP_IDEMPOTENCY_KEY="k-4"
    )
    assert_error(refused, 400, "insufficient_funds")
    assert not IdempotencyRecord.objects.exists()
    client.post("/api/wallet/deposits", {"amount": "20.00", "reference": "psp-topup"}, format="json")

    retried = client.post(
        "/api/wallet/withdrawals", {"amount": "10.00"}, format="json", HTTP_IDEMPOTENCY_KEY="k-4"
    )

    assert retried.status_code == 201
    assert WalletAccount.objects.get(user=user).balance == Decimal("15.00")


def test_repeated_bounty_creation_creates_one_bounty_and_one_escrow():
    owner = funded_user("200.00")
    client = client_for(owner)

    first = client.post(
        "/api/bounties", bounty_data(amount="60.00"), format="json", HTTP_IDEMPOTENCY_KEY="b-1"
    )
    second = client.post(
        "/api/bounties", bounty_data(amount="60.00"), format="json", HTTP_IDEMPOTENCY_KEY="b-1"
    )

    assert first.json()["id"] == second.json()["id"]
    assert len(client.get(f"/api/bounties?owner={owner.pk}").json()["results"]) == 1
    assert WalletAccount.objects.get(user=owner).balance == Decimal("140.00")


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
def test_malformed_key_is_rejected(user_client, key):
    response = user_client.post("/api/wallet/deposits", DEPOSIT, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert_error(response, 400, "invalid_idempotency_key")
    assert not WalletTransaction.objects.exists()


def test_purge_removes_only_records_past_retention(user, user_client):
    user_client.post("/api/wallet/deposits", DEPOSIT, format="json", HTTP_IDEMPOTENCY_KEY="old")
    user_client.post(
        "/api/wallet/deposits", {**DEPOSIT, "reference": "psp-new"}, format="json", HTTP_IDEMPOTENCY_KEY="new"
    )
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    call_command("purge_idempotency_keys", "--older-than-hours", "24")

    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]

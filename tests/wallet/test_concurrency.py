"""Races with real parallel connections: each thread has its own pooled PostgreSQL connection."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from bounties.models import BountyRequest, RequestStatus
from bounties.services import request_accept
from core.errors import DomainError
from tests.conftest import client_for, ledger_is_consistent, run_together
from tests.factories import application, bounty_data, funded_user, paid_bounty
from wallet.models import TransactionType, WalletAccount, WalletTransaction
from wallet.services import withdrawal_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_simultaneous_withdrawals_of_ten_from_a_hundred_succeed_exactly_ten_times():
    user = funded_user("100.00")

    results = run_together(50, lambda _: withdrawal_create(user_id=user.pk, amount=Decimal("10.00")))

    outcomes = Counter(type(result).__name__ for result in results)
    assert outcomes == {"WalletTransaction": 10, "InsufficientFunds": 40}
    assert WalletAccount.objects.get(user=user).balance == Decimal("0.00")
    assert WalletTransaction.objects.filter(type=TransactionType.WITHDRAWAL).count() == 10
    assert ledger_is_consistent()


def test_twenty_simultaneous_posts_of_thirty_from_a_hundred_escrow_exactly_three():
    """escrow_hold debits with one conditional UPDATE: concurrent posts re-check the balance."""
    owner = funded_user("100.00")
    body = bounty_data(amount="30.00")

    results = run_together(20, lambda _: client_for(owner).post("/api/bounties", body, format="json"))

    statuses = Counter(response.status_code for response in results)
    assert statuses == {201: 3, 400: 17}
    refusals = {response.json()["error"]["code"] for response in results if response.status_code == 400}
    assert refusals == {"insufficient_funds"}
    assert WalletAccount.objects.get(user=owner).balance == Decimal("10.00")
    assert WalletTransaction.objects.filter(type=TransactionType.ESCROW).count() == 3
    assert ledger_is_consistent()


def test_two_simultaneous_accepts_on_one_bounty_accept_exactly_one():
    bounty = paid_bounty(amount="50.00")
    first, second = application(bounty), application(bounty)

    results = run_together(
        2, lambda i: request_accept(request_id=(first, second)[i].pk, user_id=bounty.owner_id)
    )

    assert sum(isinstance(result, BountyRequest) for result in results) == 1
    assert sum(isinstance(result, DomainError) for result in results) == 1
    statuses = sorted(BountyRequest.objects.filter(bounty=bounty).values_list("status", flat=True))
    assert statuses == [RequestStatus.ACCEPTED, RequestStatus.REJECTED]
    bounty.refresh_from_db()
    assert bounty.status == "in_progress"
    assert (
        bounty.hunter_id == BountyRequest.objects.get(bounty=bounty, status=RequestStatus.ACCEPTED).hunter_id
    )


def test_twenty_simultaneous_repeats_of_one_idempotent_deposit_credit_once():
    user = funded_user("0.00")
    body = {"amount": "15.00", "reference": "psp-race-1"}

    def deposit(_):
        response = client_for(user).post(
            "/api/wallet/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY="race"
        )
        return response.status_code, response.content

    results = run_together(20, deposit)

    assert {status for status, _ in results} == {201}
    assert len({content for _, content in results}) == 1
    assert WalletTransaction.objects.filter(type=TransactionType.DEPOSIT).count() == 1
    assert WalletAccount.objects.get(user=user).balance == Decimal("15.00")

"""The status flow of SPEC section 2: every allowed transition, and every other one refused."""

from __future__ import annotations

import pytest

from bounties import services
from bounties.models import Bounty, BountyStatus
from tests.conftest import assert_error, client_for, ledger_is_consistent
from tests.factories import UserFactory, application, paid_bounty
from wallet.models import WalletTransaction

pytestmark = pytest.mark.django_db

ACTIONS = ("complete", "cancel", "archive")
# (status, action) -> resulting status; anything missing must be refused with 409.
ALLOWED = {
    (BountyStatus.IN_PROGRESS, "complete"): BountyStatus.COMPLETED,
    (BountyStatus.OPEN, "cancel"): BountyStatus.CANCELLED,
    (BountyStatus.IN_PROGRESS, "cancel"): BountyStatus.CANCELLED,
    (BountyStatus.COMPLETED, "archive"): BountyStatus.ARCHIVED,
    (BountyStatus.CANCELLED, "archive"): BountyStatus.ARCHIVED,
}


def bounty_in(status: str):
    """A paid bounty brought to ``status`` through the services (money included)."""
    bounty = paid_bounty(amount="30.00")
    owner = bounty.owner_id
    if status in (BountyStatus.IN_PROGRESS, BountyStatus.COMPLETED):
        services.request_accept(request_id=application(bounty).pk, user_id=owner)
    if status == BountyStatus.COMPLETED:
        services.bounty_complete(bounty_id=bounty.pk, user_id=owner)
    if status in (BountyStatus.CANCELLED, BountyStatus.ARCHIVED):
        services.bounty_cancel(bounty_id=bounty.pk, user_id=owner)
    if status == BountyStatus.ARCHIVED:
        services.bounty_archive(bounty_id=bounty.pk, user_id=owner)
    bounty.refresh_from_db()
    assert bounty.status == status
    return bounty


@pytest.mark.parametrize("status", list(BountyStatus))
@pytest.mark.parametrize("action", ACTIONS)
def test_transition(status, action):
    bounty = bounty_in(status)
    ledger_rows = WalletTransaction.objects.count()

    response = client_for(bounty.owner).post(f"/api/bounties/{bounty.pk}/{action}")

    expected = ALLOWED.get((status, action))
    bounty.refresh_from_db()
    if expected:
        assert response.status_code == 200, response.content
        assert response.json()["status"] == expected
        assert bounty.status == expected
    else:
        assert_error(response, 409, "illegal_transition")
        assert bounty.status == status
        assert WalletTransaction.objects.count() == ledger_rows
    assert ledger_is_consistent()


@pytest.mark.parametrize("action", ACTIONS)
def test_only_the_owner_may_act(action):
    bounty = bounty_in(BountyStatus.IN_PROGRESS)
    hunter_client = client_for(bounty.hunter)

    assert_error(hunter_client.post(f"/api/bounties/{bounty.pk}/{action}"), 403, "not_bounty_owner")
    bounty.refresh_from_db()
    assert bounty.status == BountyStatus.IN_PROGRESS


def test_delete_is_refused_once_a_hunter_was_accepted():
    bounty = bounty_in(BountyStatus.IN_PROGRESS)

    assert_error(client_for(bounty.owner).delete(f"/api/bounties/{bounty.pk}"), 409, "illegal_transition")
    assert Bounty.objects.filter(pk=bounty.pk).exists()


def test_completing_twice_pays_once():
    bounty = bounty_in(BountyStatus.IN_PROGRESS)
    client = client_for(bounty.owner)

    client.post(f"/api/bounties/{bounty.pk}/complete")
    second = client.post(f"/api/bounties/{bounty.pk}/complete")

    assert_error(second, 409)
    assert WalletTransaction.objects.filter(bounty=bounty, type="release").count() == 1
    assert ledger_is_consistent()


def test_actions_on_unknown_bounty_are_404():
    client = client_for(UserFactory())
    for action in ACTIONS:
        assert_error(client.post(f"/api/bounties/424242/{action}"), 404, "not_found")

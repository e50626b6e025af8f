from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bounties.models import Bounty, BountyRequest, BountyStatus, RequestStatus
from bounties.services import MAX_PENDING_REQUESTS
from tests.conftest import assert_error, client_for, reads_after_insert
from tests.factories import UserFactory, application, funded_user, paid_bounty

pytestmark = pytest.mark.django_db

MESSAGE = {"message": "I have shipped three similar projects this year and can start tomorrow."}


def test_hunter_applies_and_sees_it_in_their_list():
    bounty = paid_bounty()
    hunter = UserFactory()
    client = client_for(hunter)

    created = client.post(f"/api/bounties/{bounty.pk}/requests", MESSAGE, format="json")

    assert created.status_code == 201
    assert (created.json()["status"], created.json()["bounty_id"], created.json()["hunter_id"]) == (
        "pending",
        bounty.pk,
        hunter.pk,
    )
    listed = client.get("/api/requests").json()["results"]
    assert [row["id"] for row in listed] == [created.json()["id"]]
    assert listed[0]["bounty_title"] == bounty.title


@pytest.mark.parametrize("message", [MESSAGE["message"], "  " + "z" * 1000 + "  ", "émoji 🎉 " * 10])
def test_an_applications_answer_is_the_application_read_back_from_the_database(message):
    """The answer is serialised from the inserted row, the bounty it locked and the caller (no
    read back): it must be what the hunter's list reads from PostgreSQL."""
    bounty = paid_bounty()
    client = client_for(UserFactory())

    with CaptureQueriesContext(connection) as queries:
        created = client.post(f"/api/bounties/{bounty.pk}/requests", {"message": message}, format="json")

    assert created.status_code == 201
    assert reads_after_insert(queries, "bounties_bountyrequest", "accounts_user") == []
    assert client.get("/api/requests").json()["results"] == [created.json()]


def test_applying_to_own_bounty_is_refused_and_creates_nothing():
    bounty = paid_bounty()

    response = client_for(bounty.owner).post(f"/api/bounties/{bounty.pk}/requests", MESSAGE, format="json")

    assert_error(response, 403, "own_bounty")
    assert not BountyRequest.objects.exists()


def test_applying_twice_is_refused():
    bounty = paid_bounty()
    client = client_for(UserFactory())
    client.post(f"/api/bounties/{bounty.pk}/requests", MESSAGE, format="json")

    assert_error(
        client.post(f"/api/bounties/{bounty.pk}/requests", MESSAGE, format="json"), 409, "already_applied"
    )
    assert BountyRequest.objects.count() == 1


def test_eleventh_pending_application_is_refused_and_withdrawing_one_frees_a_slot():
    hunter = UserFactory()
    owner = funded_user("1000.00")
    first, *_ = [application(paid_bounty(owner, amount="10.00"), hunter) for _ in range(MAX_PENDING_REQUESTS)]
    eleventh = paid_bounty(owner, amount="10.00")
    client = client_for(hunter)

    refused = client.post(f"/api/bounties/{eleventh.pk}/requests", MESSAGE, format="json")

    assert_error(refused, 409, "too_many_pending_requests")
    assert BountyRequest.objects.filter(hunter=hunter).count() == MAX_PENDING_REQUESTS
    client.post(f"/api/requests/{first.pk}/withdraw")
    assert client.post(f"/api/bounties/{eleventh.pk}/requests", MESSAGE, format="json").status_code == 201


def test_applying_to_a_bounty_that_is_not_open_is_refused():
    bounty = paid_bounty()
    Bounty.objects.filter(pk=bounty.pk).update(status=BountyStatus.CANCELLED)

    response = client_for(UserFactory()).post(f"/api/bounties/{bounty.pk}/requests", MESSAGE, format="json")

    assert_error(response, 409, "bounty_not_open")


@pytest.mark.parametrize("message", ["too short", "x" * 1001, ""])
def test_application_message_length_is_checked(message):
    bounty = paid_bounty()

    response = client_for(UserFactory()).post(
        f"/api/bounties/{bounty.pk}/requests", {"message": message}, format="json"
    )

    assert "message" in assert_error(response, 400, "validation_error")["fields"]


def test_owner_lists_a_bounty_s_applications_and_nobody_else_can():
    bounty = paid_bounty()
    mine = application(bounty)

    owner_view = client_for(bounty.owner).get(f"/api/bounties/{bounty.pk}/requests")
    stranger_view = client_for(UserFactory()).get(f"/api/bounties/{bounty.pk}/requests")
    hunter_view = client_for(mine.hunter).get(f"/api/bounties/{bounty.pk}/requests")

    assert [row["id"] for row in owner_view.json()["results"]] == [mine.pk]
    assert_error(stranger_view, 403, "not_bounty_owner")
    assert_error(hunter_view, 403, "not_bounty_owner")


def test_accepting_starts_the_work_and_rejects_the_other_pending_applications():
    bounty = paid_bounty()
    chosen, other, withdrawn = application(bounty), application(bounty), application(bounty)
    client_for(withdrawn.hunter).post(f"/api/requests/{withdrawn.pk}/withdraw")

    response = client_for(bounty.owner).post(f"/api/requests/{chosen.pk}/accept")

    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    statuses = dict(BountyRequest.objects.values_list("id", "status"))
    assert statuses == {
        chosen.pk: RequestStatus.ACCEPTED,
        other.pk: RequestStatus.REJECTED,
        withdrawn.pk: RequestStatus.WITHDRAWN,
    }
    bounty.refresh_from_db()
    assert (bounty.status, bounty.hunter_id) == (BountyStatus.IN_PROGRESS, chosen.hunter_id)


def test_only_the_owner_accepts_or_rejects_and_strangers_see_nothing():
    bounty = paid_bounty()
    pending = application(bounty)

    assert_error(
        client_for(pending.hunter).post(f"/api/requests/{pending.pk}/accept"), 403, "not_bounty_owner"
    )
    assert_error(client_for(UserFactory()).post(f"/api/requests/{pending.pk}/accept"), 404, "not_found")
    assert_error(client_for(UserFactory()).post(f"/api/requests/{pending.pk}/reject"), 404, "not_found")
    pending.refresh_from_db()
    assert pending.status == RequestStatus.PENDING


def test_owner_rejects_and_only_the_applicant_withdraws():
    bounty = paid_bounty()
    first, second = application(bounty), application(bounty)

    rejected = client_for(bounty.owner).post(f"/api/requests/{first.pk}/reject")
    owner_withdraw = client_for(bounty.owner).post(f"/api/requests/{second.pk}/withdraw")
    withdrawn = client_for(second.hunter).post(f"/api/requests/{second.pk}/withdraw")

    assert rejected.json()["status"] == "rejected"
    assert_error(owner_withdraw, 403, "not_applicant")
    assert withdrawn.json()["status"] == "withdrawn"


def test_acting_on_a_request_that_is_no_longer_pending_is_409():
    bounty = paid_bounty()
    request = application(bounty)
    owner = client_for(bounty.owner)
    owner.post(f"/api/requests/{request.pk}/reject")

    assert_error(owner.post(f"/api/requests/{request.pk}/accept"), 409, "request_not_pending")
    assert_error(
        client_for(request.hunter).post(f"/api/requests/{request.pk}/withdraw"), 409, "request_not_pending"
    )


def test_my_requests_filter_by_status():
    hunter = UserFactory()
    kept = application(paid_bounty(), hunter)
    gone = application(paid_bounty(), hunter)
    client = client_for(hunter)
    client.post(f"/api/requests/{gone.pk}/withdraw")

    rows = client.get("/api/requests?status=pending").json()["results"]

    assert [row["id"] for row in rows] == [kept.pk]
    assert_error(client.get("/api/requests?status=maybe"), 400, "validation_error")

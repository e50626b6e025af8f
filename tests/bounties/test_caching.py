"""The bounties' cached kinds (bounties/caching.py): no stale read after any write through the
API, the admin or the ORM, nothing invalidated by a write that changes no cached payload or rolls
back, and the profile stats' figures. The cache's own mechanics: tests/core/test_response_cache_http.py."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.caching import PROFILE
from bounties import services
from bounties.caching import BOUNTY_DETAIL, BOUNTY_LIST, BOUNTY_SEARCH, USER_STATS
from bounties.models import BountyStatus
from tests.caching import cached_urls, ids, read, warm
from tests.conftest import client_for
from tests.factories import UserFactory, application, bounty_data, funded_user, paid_bounty

pytestmark = pytest.mark.django_db


def test_profile_stats_count_posted_completed_hunted_and_earned(anonymous, committed):
    owner = funded_user("500.00")
    hunter = UserFactory()
    done = paid_bounty(owner=owner, amount="100.00")
    paid_bounty(owner=owner, amount="20.00")
    services.request_accept(request_id=application(done, hunter=hunter).pk, user_id=owner.pk)
    services.bounty_complete(bounty_id=done.pk, user_id=owner.pk)

    owner_stats = read(anonymous, f"/api/profiles/{owner.pk}/stats")
    hunter_stats = read(anonymous, f"/api/profiles/{hunter.pk}/stats")

    assert owner_stats == {
        "user_id": owner.pk,
        "bounties_posted": 2,
        "bounties_completed": 1,
        "bounties_as_hunter": 0,
        "hunter_completed": 0,
        "total_earned": "0.00",
    }
    assert hunter_stats["bounties_as_hunter"] == hunter_stats["hunter_completed"] == 1
    assert Decimal(hunter_stats["total_earned"]) == Decimal("95.00")  # 100 minus the 5 % fee
    assert anonymous.get("/api/profiles/999999/stats").status_code == 404


def test_etag_changes_after_a_write_and_the_old_one_gets_the_new_body(anonymous, bounty, committed):
    url = f"/api/bounties/{bounty.pk}"
    etag = anonymous.get(url)["ETag"]

    with committed():
        client_for(bounty.owner).patch(url, {"title": "Design a new logo for a bakery"}, format="json")
    response = anonymous.get(url, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag
    assert response.json()["title"] == "Design a new logo for a bakery"


def test_creating_a_bounty_shows_in_list_and_search(committed):
    owner = funded_user("100.00")
    anonymous = client_for(UserFactory())
    warm(anonymous, "/api/bounties")
    warm(anonymous, "/api/bounties/search?q=aquarium")
    warm(anonymous, f"/api/profiles/{owner.pk}/stats")

    with committed():
        created = client_for(owner).post(
            "/api/bounties", bounty_data(title="Clean the office aquarium", amount="10.00"), format="json"
        )
    assert created.status_code == 201, created.content

    new_id = created.json()["id"]
    assert new_id in ids(read(anonymous, "/api/bounties", "miss"))
    assert ids(read(anonymous, "/api/bounties/search?q=aquarium", "miss")) == [new_id]
    assert read(anonymous, f"/api/profiles/{owner.pk}/stats", "miss")["bounties_posted"] == 1


def test_editing_a_bounty_shows_in_detail_list_and_search(anonymous, bounty, committed):
    urls = cached_urls(bounty)
    for name in ("detail", "list"):
        warm(anonymous, urls[name])
    assert warm(anonymous, "/api/bounties/search?q=flower")["results"] == []

    with committed():
        response = client_for(bounty.owner).patch(
            urls["detail"], {"title": "Design a logo for a flower shop"}, format="json"
        )
    assert response.status_code == 200

    assert read(anonymous, urls["detail"], "miss")["title"] == "Design a logo for a flower shop"
    assert read(anonymous, urls["list"], "miss")["results"][0]["title"] == "Design a logo for a flower shop"
    assert ids(read(anonymous, "/api/bounties/search?q=flower", "miss")) == [bounty.pk]


def test_deleting_a_bounty_hides_it_everywhere(anonymous, bounty, committed):
    urls = cached_urls(bounty)
    for name in ("detail", "list", "search", "stats"):
        warm(anonymous, urls[name])

    with committed():
        assert client_for(bounty.owner).delete(urls["detail"]).status_code == 204

    assert anonymous.get(urls["detail"]).status_code == 404
    assert bounty.pk not in ids(read(anonymous, urls["list"]))
    assert read(anonymous, urls["search"])["results"] == []
    assert read(anonymous, urls["stats"], "miss")["bounties_posted"] == 0


@pytest.mark.parametrize(
    ("action", "start", "expected"),
    [
        ("cancel", BountyStatus.OPEN, BountyStatus.CANCELLED),
        ("complete", BountyStatus.IN_PROGRESS, BountyStatus.COMPLETED),
        ("archive", BountyStatus.CANCELLED, BountyStatus.ARCHIVED),
    ],
)
def test_status_changes_show_in_detail_list_and_stats(anonymous, bounty, committed, action, start, expected):
    hunter = UserFactory()
    if start == BountyStatus.IN_PROGRESS:
        services.request_accept(request_id=application(bounty, hunter=hunter).pk, user_id=bounty.owner_id)
    if start == BountyStatus.CANCELLED:
        services.bounty_cancel(bounty_id=bounty.pk, user_id=bounty.owner_id)
    urls = cached_urls(bounty)
    status_list = f"/api/bounties?status={start}"
    warm(anonymous, urls["detail"])
    warm(anonymous, status_list)
    warm(anonymous, urls["stats"])
    warm(anonymous, f"/api/profiles/{hunter.pk}/stats")

    with committed():
        response = client_for(bounty.owner).post(f"{urls['detail']}/{action}")
    assert response.status_code == 200, response.content

    assert read(anonymous, urls["detail"], "miss")["status"] == expected
    assert bounty.pk not in ids(read(anonymous, status_list, "miss"))
    owner_stats = read(anonymous, urls["stats"], "miss")
    if action == "complete":
        assert owner_stats["bounties_completed"] == 1
        hunter_stats = read(anonymous, f"/api/profiles/{hunter.pk}/stats", "miss")
        assert Decimal(hunter_stats["total_earned"]) == Decimal("38.00")


def test_accepting_an_application_shows_in_detail_list_and_the_hunters_stats(anonymous, bounty, committed):
    hunter = UserFactory()
    applied = application(bounty, hunter=hunter)
    urls = cached_urls(bounty)
    warm(anonymous, urls["detail"])
    warm(anonymous, urls["list"])
    warm(anonymous, f"/api/profiles/{hunter.pk}/stats")

    with committed():
        response = client_for(bounty.owner).post(f"/api/requests/{applied.pk}/accept")
    assert response.status_code == 200, response.content

    detail = read(anonymous, urls["detail"], "miss")
    assert (detail["status"], detail["hunter_username"]) == (BountyStatus.IN_PROGRESS, hunter.username)
    assert bounty.pk not in ids(read(anonymous, urls["list"], "miss"))  # the list shows open ones
    assert read(anonymous, f"/api/profiles/{hunter.pk}/stats", "miss")["bounties_as_hunter"] == 1


def test_writes_that_change_no_cached_payload_leave_the_cache_alone(anonymous, bounty, committed):
    """Applying, withdrawing and rejecting change applications (never cached), not bounties."""
    urls = cached_urls(bounty)
    warm(anonymous, urls["detail"])
    warm(anonymous, urls["list"])
    hunter = funded_user("10.00")
    message = {"message": "I have designed logos for three bakeries and can start on Monday."}

    with committed():
        applied = client_for(hunter).post(f"{urls['detail']}/requests", message, format="json")
        client_for(hunter).post(f"/api/requests/{applied.json()['id']}/withdraw")
        again = client_for(UserFactory()).post(f"{urls['detail']}/requests", message, format="json")
        client_for(bounty.owner).post(f"/api/requests/{again.json()['id']}/reject")

    read(anonymous, urls["detail"], "hit")
    read(anonymous, urls["list"], "hit")
    assert client_for(hunter).get("/api/requests").json()["results"][0]["status"] == "withdrawn"


def test_a_rolled_back_write_invalidates_nothing(anonymous, bounty, committed):
    url = f"/api/bounties/{bounty.pk}"
    warm(anonymous, url)

    with committed():
        refused = client_for(UserFactory()).patch(url, {"title": "Not my bounty to rename"}, format="json")

    assert refused.status_code == 403
    read(anonymous, url, "hit")


@pytest.mark.django_db(transaction=True)
def test_a_real_commit_invalidates_without_help():
    """No test transaction here: the write commits and its on_commit callback runs for real."""
    bounty = paid_bounty(title="Paint the garden fence blue", amount="15.00")
    client = client_for(UserFactory())
    url = f"/api/bounties/{bounty.pk}"
    warm(client, url)
    warm(client, "/api/bounties/search?q=fence")

    client_for(bounty.owner).patch(url, {"title": "Paint the garden fence green"}, format="json")

    # The edit's response wrote the new detail through to the cache.
    assert read(client, url, "hit")["title"] == "Paint the garden fence green"
    assert read(client, "/api/bounties/search?q=green", "miss")["results"][0]["id"] == bounty.pk


def test_the_admin_and_the_orm_invalidate_too(anonymous, bounty, committed):
    url = f"/api/bounties/{bounty.pk}"
    warm(anonymous, url)
    warm(anonymous, f"/api/profiles/{bounty.owner_id}")

    with committed():
        bounty.title = "Design a logo for a bike shop"
        bounty.save()
        bounty.owner.bio = "Now with bikes."
        bounty.owner.save()

    assert read(anonymous, url, "miss")["title"] == "Design a logo for a bike shop"
    assert read(anonymous, f"/api/profiles/{bounty.owner_id}", "miss")["bio"] == "Now with bikes."


def test_kinds_share_one_family_for_lists_and_search_and_scope_details_per_row():
    assert BOUNTY_LIST.scope() == BOUNTY_SEARCH.scope("anything")
    assert BOUNTY_DETAIL.scope(1) != BOUNTY_DETAIL.scope(2)
    assert PROFILE.scope(1) != USER_STATS.scope(1)

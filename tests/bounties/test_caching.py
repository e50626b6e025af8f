"""Response caching of every cached endpoint: miss then hit, stale while one request
recomputes, ETag and 304, and no stale read after any write through the API."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.core.cache import caches
from rest_framework import serializers

from accounts.caching import PROFILE
from bounties import services
from bounties.caching import BOUNTY_DETAIL, BOUNTY_LIST, BOUNTY_SEARCH, USER_STATS
from bounties.models import BountyStatus
from bounties.serializers import BountyDetailSerializer
from core.response_cache import CachedKind
from tests.conftest import client_for
from tests.factories import UserFactory, application, bounty_data, funded_user, paid_bounty

pytestmark = pytest.mark.django_db


def read(client, url: str, expected_cache: str | None = None, **headers) -> dict:
    response = client.get(url, **headers)
    assert response.status_code == 200, response.content
    if expected_cache is not None:
        assert response["X-Cache"] == expected_cache, (url, response["X-Cache"])
    return response.json()


def warm(client, url: str) -> dict:
    """Read twice: the first computes, the second must come from the cache, identical."""
    first = read(client, url, "miss")
    assert read(client, url, "hit") == first
    return first


def ids(page: dict) -> list[int]:
    return [row["id"] for row in page["results"]]


@pytest.fixture
def anonymous(api_client):
    return api_client


@pytest.fixture
def bounty():
    return paid_bounty(title="Design a logo for a bakery", amount="40.00")


def cached_urls(bounty) -> dict[str, str]:
    return {
        "detail": f"/api/bounties/{bounty.pk}",
        "list": "/api/bounties?limit=5",
        "search": "/api/bounties/search?q=logo",
        "profile": f"/api/profiles/{bounty.owner_id}",
        "stats": f"/api/profiles/{bounty.owner_id}/stats",
    }


@pytest.mark.parametrize("name", ["detail", "list", "search", "profile", "stats"])
def test_miss_then_hit_with_the_same_body_and_etag(anonymous, bounty, name, django_assert_num_queries):
    url = cached_urls(bounty)[name]
    miss = anonymous.get(url)
    assert miss["X-Cache"] == "miss"

    # A hit serialises nothing and asks PostgreSQL nothing (the detail's view count goes to Redis).
    with django_assert_num_queries(0):
        hit = anonymous.get(url)

    assert hit["X-Cache"] == "hit"
    assert hit.content == miss.content
    assert hit["ETag"] == miss["ETag"]
    assert hit["Cache-Control"] == "no-cache"


def test_public_data_is_one_entry_for_everyone(bounty):
    url = f"/api/bounties/{bounty.pk}"
    read(client_for(UserFactory()), url, "miss")
    read(client_for(UserFactory()), url, "hit")


def test_query_parameters_in_any_order_share_an_entry(anonymous, bounty):
    read(anonymous, "/api/bounties?limit=5&ordering=amount", "miss")
    read(anonymous, "/api/bounties?ordering=amount&limit=5", "hit")
    read(anonymous, "/api/bounties?ordering=-amount&limit=5", "miss")


def test_errors_are_not_cached(anonymous):
    assert anonymous.get("/api/bounties/999999").status_code == 404
    assert anonymous.get("/api/bounties/search?q=").status_code == 400
    assert anonymous.get("/api/bounties?status=nonsense").status_code == 400
    assert not caches["responses"].keys("resp:*")


def test_the_owner_sees_an_uncached_private_profile_and_everyone_else_the_cached_public_one(bounty):
    owner = client_for(bounty.owner)
    url = f"/api/profiles/{bounty.owner_id}"

    mine = owner.get(url)
    theirs = client_for(UserFactory()).get(url)

    assert mine["X-Cache"] == "miss"
    assert "email" in mine.json()
    assert theirs["X-Cache"] == "miss"
    assert "email" not in theirs.json()
    assert owner.get(url)["X-Cache"] == "miss"  # never cached
    assert client_for(UserFactory()).get(url)["X-Cache"] == "hit"
    assert "email" not in client_for(UserFactory()).get(url).json()
    assert mine["Vary"] == theirs["Vary"] == "Authorization"


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


# --- ETag and 304 -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["detail", "list", "search", "profile", "stats"])
def test_if_none_match_gets_304_from_the_cached_value(anonymous, bounty, name, django_assert_num_queries):
    url = cached_urls(bounty)[name]
    etag = anonymous.get(url)["ETag"]

    with django_assert_num_queries(0):
        response = anonymous.get(url, HTTP_IF_NONE_MATCH=etag)
    weak = anonymous.get(url, HTTP_IF_NONE_MATCH=f'"other", W/{etag}')  # as echoed after gzip
    other = anonymous.get(url, HTTP_IF_NONE_MATCH='"something-else"')

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["X-Cache"] == "hit"
    assert weak.status_code == 304
    assert other.status_code == 200


def test_etag_changes_after_a_write_and_the_old_one_gets_the_new_body(anonymous, bounty, committed):
    url = f"/api/bounties/{bounty.pk}"
    etag = anonymous.get(url)["ETag"]

    with committed():
        client_for(bounty.owner).patch(url, {"title": "Design a new logo for a bakery"}, format="json")
    response = anonymous.get(url, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag
    assert response.json()["title"] == "Design a new logo for a bakery"


def test_gzip_keeps_the_etag_usable(anonymous):
    for index in range(12):
        paid_bounty(title=f"Write the documentation chapter {index:02d}", amount="5.00")
    first = anonymous.get("/api/bounties?limit=12", HTTP_ACCEPT_ENCODING="gzip")
    assert first["Content-Encoding"] == "gzip"
    assert first["ETag"].startswith("W/")

    again = anonymous.get(
        "/api/bounties?limit=12", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=first["ETag"]
    )

    assert again.status_code == 304


# --- expiry: stale while one request recomputes -----------------------------------------------


STALE_CASES = {
    # name -> (kind, its TTL setting, the key parts the view uses for cached_urls(bounty)[name])
    "detail": (BOUNTY_DETAIL, lambda b: (b.pk,)),
    "list": (BOUNTY_LIST, lambda b: ("http", "testserver", (("limit", ("5",)),))),
    "search": (BOUNTY_SEARCH, lambda b: ("http", "testserver", (("q", ("logo",)),))),
    "profile": (PROFILE, lambda b: (b.owner_id,)),
    "stats": (USER_STATS, lambda b: (b.owner_id,)),
}


@pytest.mark.parametrize("name", list(STALE_CASES))
def test_an_expired_entry_is_served_stale_and_refreshed_by_one_request_after_its_response(
    anonymous, bounty, settings, name
):
    kind, parts = STALE_CASES[name]
    setattr(settings, kind.ttl_setting, 1)
    url = cached_urls(bounty)[name]
    first = read(anonymous, url, "miss")
    time.sleep(1.1)
    # Another request holds the recompute lock of this key.
    lock = caches["responses"].lock(f"{kind.key(*parts(bounty))}:lock", timeout=5)
    assert lock.acquire(blocking=False)

    assert read(anonymous, url, "stale") == first

    lock.release()
    # This request takes the lock: it gets the stale body too, and refreshes once it is sent.
    assert read(anonymous, url, "stale") == first
    read(anonymous, url, "hit")  # recomputed (a detail's view count may have moved)


def test_past_the_grace_period_an_entry_is_gone(anonymous, bounty, settings):
    settings.CACHE_TTL_BOUNTY_DETAIL = 1
    settings.CACHE_STALE_SECONDS = 0
    url = f"/api/bounties/{bounty.pk}"
    read(anonymous, url, "miss")
    time.sleep(2.1)

    read(anonymous, url, "miss")


def test_a_ttl_of_zero_turns_a_cache_off(anonymous, bounty, settings):
    settings.CACHE_TTL_BOUNTY_LIST = 0
    read(anonymous, "/api/bounties", "miss")
    read(anonymous, "/api/bounties", "miss")


# --- versioning -------------------------------------------------------------------------------


def test_a_changed_serializer_reads_new_keys():
    class Extended(BountyDetailSerializer):
        extra = serializers.CharField(default="")

        class Meta(BountyDetailSerializer.Meta):
            fields = [*BountyDetailSerializer.Meta.fields, "extra"]

    before = CachedKind("bounty-detail", "CACHE_TTL_BOUNTY_DETAIL", BountyDetailSerializer)
    after = CachedKind("bounty-detail", "CACHE_TTL_BOUNTY_DETAIL", Extended)

    assert before.key(1) == BOUNTY_DETAIL.key(1)
    assert after.key(1) != before.key(1)
    assert before.key(1).startswith("resp:v1:bounty-detail:")


# --- no stale data after a write, for every write that changes a cached payload ---------------


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


def test_editing_a_profile_shows_to_everyone(anonymous, bounty, committed):
    url = f"/api/profiles/{bounty.owner_id}"
    warm(anonymous, url)

    with committed():
        response = client_for(bounty.owner).patch(url, {"bio": "Bakes and designs."}, format="json")
    assert response.status_code == 200

    assert read(anonymous, url, "miss")["bio"] == "Bakes and designs."


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


@pytest.mark.parametrize(
    "url",
    ["/api/me", "/api/wallet", "/api/wallet/transactions", "/api/requests", "/api/conversations"],
)
def test_per_user_endpoints_are_never_cached(url):
    client = client_for(funded_user("10.00"))
    first, second = client.get(url), client.get(url)
    assert first.status_code == second.status_code == 200
    assert "X-Cache" not in second


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

"""The response cache (core/response_cache.py) on every cached endpoint: miss then hit with
no query, one entry for everyone, ETag and 304 (gzip too), stale while one request recomputes,
expiry, keys that follow the serializer, and per-user endpoints never cached. The invalidation
of each kind after a write is tested by its owner (tests/bounties/test_caching.py,
tests/accounts/test_profile_cache.py)."""

from __future__ import annotations

import time

import pytest
from django.core.cache import caches
from rest_framework import serializers

from accounts.caching import PROFILE
from bounties.caching import BOUNTY_DETAIL, BOUNTY_LIST, BOUNTY_SEARCH, USER_STATS
from bounties.serializers import BountyDetailSerializer
from core.response_cache import CachedKind
from tests.caching import cached_urls, read
from tests.conftest import client_for
from tests.factories import UserFactory, funded_user, paid_bounty

pytestmark = pytest.mark.django_db


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
    # Shared caches may keep an anonymous read briefly (tests/core/test_cache_headers.py pins it).
    assert hit["Cache-Control"] == miss["Cache-Control"] and hit["Cache-Control"].startswith("public, ")


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


@pytest.mark.parametrize("url", ["/api/me", "/api/wallet", "/api/wallet/transactions", "/api/requests"])
def test_per_user_endpoints_are_never_cached(url):
    """Except the conversation list, cached for its user alone (tests/messaging/test_caching.py)."""
    client = client_for(funded_user("10.00"))
    first, second = client.get(url), client.get(url)
    assert first.status_code == second.status_code == 200
    assert "X-Cache" not in second

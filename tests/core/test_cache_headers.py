"""HTTP caching headers of every endpoint (README "Edge caching"): only anonymous cached reads
may be kept by a shared cache (public, s-maxage), signed-in callers get ``private`` copies, and
everything else is ``private, no-store``. Routes that take an object id are swept in
tests/core/test_authorization_sweep.py (test_only_anonymous_cached_reads_are_public); here
are the others, and a new route fails until it is listed."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import get_resolver
from rest_framework.test import APIClient

from tests.conftest import assert_error, client_for
from tests.core import test_authorization_sweep as sweep
from tests.factories import UserFactory, bounty_data, funded_user, paid_bounty

pytestmark = pytest.mark.django_db

PRIVATE_COPY = "private, no-cache"  # a signed-in caller's cached read: the browser's own copy
NEVER_STORED = "private, no-store"

# Every GET of an API route without an object id, and what an anonymous caller may cache.
ROUTES_WITHOUT_ID = {
    "bounty-list": "/api/bounties?limit=3",
    "bounty-search": "/api/bounties/search?q=logo",
    "me": "/api/me",
    "request-list": "/api/requests",
    "wallet": "/api/wallet",
    "wallet-transactions": "/api/wallet/transactions",
    "conversation-list": "/api/conversations",
    "schema": "/api/schema",
    "docs": "/api/docs",
}
EDGE_CACHEABLE = {"bounty-list", "bounty-search"}
CACHED_PER_USER = {"conversation-list"}  # cached in Redis for its user only: never shared


def public_header() -> str:
    return (
        f"public, max-age=0, s-maxage={settings.EDGE_CACHE_SECONDS}, "
        f"stale-while-revalidate={settings.EDGE_STALE_WHILE_REVALIDATE_SECONDS}, "
        f"stale-if-error={settings.EDGE_STALE_IF_ERROR_SECONDS}"
    )


def vary(response) -> set[str]:
    return {part.strip() for part in response.get("Vary", "").split(",") if part.strip()}


def test_every_api_get_route_without_an_id_is_listed():
    found = {
        entry.name
        for pattern, _, captures, entry in sweep._walk(get_resolver())
        if pattern.startswith("api/") and not captures and "GET" in sweep.view_methods(entry.callback)
    }

    assert found == set(ROUTES_WITHOUT_ID)


@pytest.mark.parametrize("name", sorted(ROUTES_WITHOUT_ID))
def test_get_without_an_id_as_anonymous_and_signed_in(name, bounty):
    url = ROUTES_WITHOUT_ID[name]
    anonymous = APIClient().get(url)
    signed_in = client_for(funded_user("10.00")).get(url)

    assert signed_in.status_code == 200
    if name in EDGE_CACHEABLE:
        assert anonymous.status_code == 200
        assert anonymous["Cache-Control"] == public_header()
        assert signed_in["Cache-Control"] == PRIVATE_COPY
        assert "Authorization" in vary(anonymous) and "Authorization" in vary(signed_in)
    elif name in CACHED_PER_USER:
        assert anonymous.status_code == 401
        assert anonymous["Cache-Control"] == NEVER_STORED
        assert signed_in["Cache-Control"] == PRIVATE_COPY
        assert "Authorization" in vary(signed_in)
    else:
        assert signed_in["Cache-Control"] == NEVER_STORED
        assert anonymous["Cache-Control"] == NEVER_STORED  # 401 or, for the schema, 200


def test_the_owners_own_profile_is_a_private_copy_and_the_public_one_varies_on_authorization(bounty):
    url = f"/api/profiles/{bounty.owner_id}"
    own = client_for(bounty.owner).get(url)
    public = APIClient().get(url)

    assert "wallet" in own.json() and "wallet" not in public.json()
    assert own["Cache-Control"] == PRIVATE_COPY
    assert public["Cache-Control"] == public_header()
    assert vary(own) == vary(public) == {"Authorization"}


def test_a_304_carries_the_same_caching_headers(bounty):
    url = f"/api/bounties/{bounty.pk}"
    first = APIClient().get(url)

    again = APIClient().get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.status_code == 304
    assert again["Cache-Control"] == first["Cache-Control"] == public_header()
    assert vary(again) == vary(first)


def test_a_gzip_body_varies_on_accept_encoding_and_authorization():
    for index in range(12):
        paid_bounty(title=f"Write the documentation chapter {index:02d}", amount="5.00")

    response = APIClient().get("/api/bounties?limit=12", HTTP_ACCEPT_ENCODING="gzip")

    assert response["Content-Encoding"] == "gzip"
    assert vary(response) == {"Accept-Encoding", "Authorization"}
    assert response["Cache-Control"] == public_header()


def test_writes_are_never_stored():
    client = client_for(funded_user("100.00"))

    created = client.post("/api/bounties", bounty_data(), format="json")
    deposit = client.post("/api/wallet/deposits", {"amount": "5.00", "reference": "psp-hdr"}, format="json")
    token = APIClient().post(
        "/api/auth/token", {"username": UserFactory().username, "password": "wrong"}, format="json"
    )

    assert (created.status_code, deposit.status_code) == (201, 201)
    assert created["Cache-Control"] == deposit["Cache-Control"] == token["Cache-Control"] == NEVER_STORED


def test_errors_of_cached_reads_are_never_stored():
    client = APIClient()

    missing = client.get("/api/bounties/999999")
    bad = client.get("/api/bounties/search?q=")

    assert_error(missing, 404)
    assert_error(bad, 400)
    assert missing["Cache-Control"] == bad["Cache-Control"] == NEVER_STORED


def test_a_429_is_never_stored(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "list": "1/m"}
    client = APIClient()

    # At most one window boundary falls between three quick requests: the third is refused.
    refused = [client.get("/api/bounties") for _ in range(3)][-1]

    assert refused.status_code == 429
    assert refused["Cache-Control"] == NEVER_STORED


def test_health_and_metrics_are_never_stored():
    for url in ("/healthz", "/readyz", "/metrics"):
        assert APIClient().get(url)["Cache-Control"] == NEVER_STORED, url


def test_edge_caching_off_leaves_anonymous_reads_revalidated_every_time(settings, bounty):
    settings.EDGE_CACHE_SECONDS = 0

    response = APIClient().get(f"/api/bounties/{bounty.pk}")

    assert response["Cache-Control"] == "no-cache"

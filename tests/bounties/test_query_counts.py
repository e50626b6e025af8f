"""Every list endpoint costs the same number of queries whatever the page size: no N+1."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.factories import UserFactory, application, funded_user, paid_bounty

pytestmark = pytest.mark.django_db

ROWS = 50


@pytest.fixture
def marketplace():
    """50 bounties by one owner, a hunter who applied to all, 50 applications to one bounty,
    and a wallet with more than 50 ledger rows."""
    owner = funded_user("10000.00")
    hunter = UserFactory()
    bounties = [
        paid_bounty(owner, amount="10.00", title=f"Searchable widget task {i:03d}") for i in range(ROWS)
    ]
    for bounty in bounties[:10]:
        application(bounty, hunter)
    for _ in range(ROWS):
        application(bounties[-1])
    return {"owner": owner, "hunter": hunter, "bounty": bounties[-1]}


def queries_for(client, url: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured), len(response.json()["results"])


@pytest.mark.parametrize(
    ("who", "url", "max_queries"),
    [
        # the page query only: no COUNT with cursor pagination, the token is cached
        ("anonymous", "/api/bounties", 1),
        ("anonymous", "/api/bounties/search?q=widget", 1),
        ("owner", "/api/bounties/{bounty}/requests", 2),  # + the bounty ownership check
        ("hunter", "/api/requests", 1),
        ("owner", "/api/wallet/transactions", 1),
    ],
)
def test_list_endpoint_runs_constant_queries(
    marketplace, django_assert_max_num_queries, who, url, max_queries
):
    client = APIClient() if who == "anonymous" else client_for(marketplace[who])
    url = url.format(bounty=marketplace["bounty"].pk)
    separator = "&" if "?" in url else "?"

    client.get("/api/me")  # caches the token: the measured requests authenticate from Redis
    small, small_rows = queries_for(client, f"{url}{separator}limit=1")
    with django_assert_max_num_queries(max_queries):
        large, large_rows = queries_for(client, f"{url}{separator}limit={ROWS}")

    assert small_rows == 1
    assert large_rows >= 10
    assert small == large

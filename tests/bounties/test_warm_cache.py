"""`manage.py warm_cache`: what it warms, that clients then hit it, --dry-run and --limit."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command

from bounties.models import Bounty, Category
from bounties.warm import common_terms
from tests.factories import paid_bounty

pytestmark = pytest.mark.django_db


@pytest.fixture
def bounties():
    made = [
        paid_bounty(title=f"Design a poster for the {place} festival", amount="5.00", category=category)
        for place, category in [("harbour", "design"), ("river", "design"), ("harbour", "web")]
    ]
    Bounty.objects.filter(pk=made[2].pk).update(view_count=50)
    Bounty.objects.filter(pk=made[0].pk).update(view_count=10)
    return made


def warm_cache(*args: str) -> str:
    out = StringIO()
    call_command("warm_cache", *args, stdout=out)
    return out.getvalue()


def test_common_terms_are_words_users_type_without_stop_words(bounties):
    terms = common_terms(5)
    assert terms[:3] == ["design", "festival", "poster"]  # in all three, alphabetical on ties
    assert "harbour" in terms
    assert "for" not in terms and "the" not in terms


def test_warming_fills_details_lists_and_searches_that_clients_then_hit(bounties, api_client):
    out = warm_cache("--limit", "2", "--terms", "2")
    assert Bounty.objects.get(pk=bounties[2].pk).view_count == 50  # warming is not a view

    expected = 2 + 2 * (1 + len(Category.values)) + 2 * 2
    assert f"{expected} entries to warm (2 detail, {2 + 2 * len(Category.values)} list, 4 search)" in out
    assert f"Warmed {expected} entries" in out and f"{expected} computed" in out
    lines = out.splitlines()
    assert lines.index(next(line for line in lines if line.endswith(f"/api/bounties/{bounties[2].pk}"))) < (
        lines.index(next(line for line in lines if line.endswith(f"/api/bounties/{bounties[0].pk}")))
    )  # most viewed first
    for url in (
        f"/api/bounties/{bounties[2].pk}",
        f"/api/bounties/{bounties[0].pk}",
        "/api/bounties",
        "/api/bounties?limit=20",
        "/api/bounties?category=design",
        "/api/bounties/search?q=design&limit=20",
    ):
        assert api_client.get(url, HTTP_HOST="127.0.0.1:8000")["X-Cache"] == "hit", url
    assert api_client.get(f"/api/bounties/{bounties[1].pk}")["X-Cache"] == "miss"  # beyond --limit


def test_warmed_pages_are_the_ones_clients_would_get(bounties, api_client):
    """Byte for byte, so a search is ranked and its page links page by rank."""
    warm_cache("--terms", "1", "--limit", "0")
    paths = ["/api/bounties?limit=20", "/api/bounties/search?q=design&limit=20"]
    warmed = {path: api_client.get(path, HTTP_HOST="127.0.0.1:8000") for path in paths}
    caches["responses"].clear()
    computed = {path: api_client.get(path, HTTP_HOST="127.0.0.1:8000") for path in paths}

    for path in paths:
        assert (warmed[path]["X-Cache"], computed[path]["X-Cache"]) == ("hit", "miss")
        assert warmed[path].content == computed[path].content
    ranks = [row["rank"] for row in warmed[paths[1]].json()["results"]]
    assert len(ranks) == 3 and ranks == sorted(ranks, reverse=True)


def test_a_second_run_finds_everything_warm(bounties):
    warm_cache("--limit", "3")
    out = warm_cache("--limit", "3")
    assert "0 computed" in out


def test_dry_run_warms_nothing(bounties):
    out = warm_cache("--dry-run", "--limit", "1", "--terms", "1")
    assert f"/api/bounties/{bounties[2].pk}" in out
    assert "/api/bounties/search?q=design" in out
    assert "Dry run: nothing warmed." in out
    assert not caches["responses"].keys("resp:*")


def test_negative_limits_are_refused():
    with pytest.raises(CommandError, match="cannot be negative"):
        warm_cache("--limit", "-1")


def test_warming_after_writes_refreshes_the_entries_they_left_behind(
    bounties, api_client, settings, committed
):
    """Within the public lag an invalidated entry is served stale; warming refreshes it at once
    (as the stale request's lock holder), so the next read is a hit with the write in it."""
    settings.CACHE_PUBLIC_LAG_SECONDS, settings.CACHE_COALESCE_SECONDS = 30, 0
    warm_cache("--limit", "3", "--terms", "0")
    bounty = Bounty.objects.get(pk=bounties[2].pk)
    bounty.title = "Design a poster for the lighthouse festival"
    with committed():
        bounty.save(update_fields=["title"])  # bumps its detail and every list

    out = warm_cache("--limit", "3", "--terms", "0")

    assert "stale" in out
    for url in (f"/api/bounties/{bounties[2].pk}", "/api/bounties?category=web"):
        response = api_client.get(url, HTTP_HOST="127.0.0.1:8000")
        assert response["X-Cache"] == "hit", url
        assert "lighthouse" in response.content.decode(), url

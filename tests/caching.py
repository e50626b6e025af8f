"""Helpers of the response-cache tests (tests/core/test_response_cache_http.py,
tests/bounties/test_caching.py, tests/accounts/test_profile_cache.py): read a cached endpoint and
check its X-Cache, and the URLs of every cached kind for one bounty (the ``bounty`` fixture of
tests/conftest.py)."""

from __future__ import annotations


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


def cached_urls(bounty) -> dict[str, str]:
    return {
        "detail": f"/api/bounties/{bounty.pk}",
        "list": "/api/bounties?limit=5",
        "search": "/api/bounties/search?q=logo",
        "profile": f"/api/profiles/{bounty.owner_id}",
        "stats": f"/api/profiles/{bounty.owner_id}/stats",
    }

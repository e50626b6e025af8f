"""What `manage.py warm_cache` puts in Redis, through the same code path as the API.

Lists and searches are requested through the views (with rate limits off in the command's
process), so their keys, page links and generations are exactly those a client's request
would use; details go through core.response_cache.fetch without counting a view. Safe while
serving: an entry is stored under the generation read before its query, so a write that
commits meanwhile still wins.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db import connection
from django.test import override_settings
from django.urls import resolve
from rest_framework.test import APIRequestFactory

from bounties.caching import BOUNTY_DETAIL
from bounties.models import Bounty, BountyStatus, Category
from bounties.views import bounty_detail_payload
from core.response_cache import fetch

# The API's default page and the mobile app's page of 20 are distinct cache entries.
PAGE_SIZES: tuple[int | None, ...] = (None, 20)


@dataclass(frozen=True)
class Target:
    kind: str  # detail | list | search
    path: str
    bounty_id: int | None = None


@dataclass(frozen=True)
class Warmed:
    target: Target
    state: str  # what the cache answered: hit (already warm) or miss (computed and stored now)
    ms: float


def most_viewed_open(limit: int) -> list[int]:
    return list(
        Bounty.objects.filter(status=BountyStatus.OPEN)
        .order_by("-view_count", "-created_at")
        .values_list("pk", flat=True)[:limit]
    )


def common_terms(limit: int) -> list[str]:
    """The words in most open bounties' titles, as users type them (not stems), stop words out."""
    table = Bounty._meta.db_table
    inner = f"SELECT to_tsvector('simple', title) FROM {table} WHERE status = 'open' AND deleted_at IS NULL"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT word FROM ts_stat(%s) "
            "WHERE length(word) > 2 AND word ~ '^[a-z]+$' AND numnode(plainto_tsquery('english', word)) > 0 "
            "ORDER BY ndoc DESC, word LIMIT %s",
            [inner, limit],
        )
        return [word for (word,) in cursor.fetchall()]


def _with_sizes(path: str, params: dict[str, str]) -> Iterator[str]:
    for size in PAGE_SIZES:
        query = {**params, **({"limit": str(size)} if size else {})}
        yield f"{path}?{urlencode(query)}" if query else path


def plan(*, limit: int, terms: int) -> list[Target]:
    targets = [Target("detail", f"/api/bounties/{pk}", pk) for pk in most_viewed_open(limit)]
    targets += [Target("list", path) for path in _with_sizes("/api/bounties", {})]
    for category in Category.values:
        targets += [Target("list", path) for path in _with_sizes("/api/bounties", {"category": category})]
    for term in common_terms(terms):
        targets += [Target("search", path) for path in _with_sizes("/api/bounties/search", {"q": term})]
    return targets


def warm(targets: list[Target], *, host: str, scheme: str = "http") -> Iterator[Warmed]:
    factory = APIRequestFactory()
    with override_settings(RATELIMIT_ENABLE=False):
        for target in targets:
            started = time.perf_counter()
            if target.kind == "detail":
                bounty_id = target.bounty_id
                found = fetch(
                    BOUNTY_DETAIL, (bounty_id,), functools.partial(bounty_detail_payload, bounty_id)
                )
                if found.refresh is not None:  # stale, and this caller holds the lock: refresh now
                    found.refresh()
                state = found.state
            else:
                request = factory.get(target.path, HTTP_HOST=host, secure=scheme == "https")
                # The routed view, with its action's own filter backends (search ranks).
                match = resolve(target.path.split("?")[0])
                response = match.func(request, *match.args, **match.kwargs)
                ok = response.status_code == 200
                state = response["X-Cache"] if ok else f"error {response.status_code}"
                if refresh := getattr(response, "refresh_cache", None):
                    refresh()  # stale, and this caller holds the lock: refresh now
            yield Warmed(target, state, (time.perf_counter() - started) * 1000)

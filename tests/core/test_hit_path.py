"""The lean hit path (core/hit_path.py): a cached GET answered in one Redis round trip gives
byte for byte what the full stack gives (hits, stale answers, 304s, 429s, gzip and plain,
anonymous and token), counts in the same rate-limit bucket, counts a detail's view once, and
steps aside (to the full path) whenever it cannot answer as the full path would.

Every test runs twice: with the hit path's middleware answering, and with its WSGI front
(core/hit_front.py, what bountyexpo.wsgi serves) in front of the test client's handler
(``short_path``). The front's own concerns are in test_hit_front.py."""

from __future__ import annotations

import gzip
import sys
import time
from contextlib import contextmanager, nullcontext
from unittest import mock

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse
from django.test import override_settings
from django_redis import get_redis_connection
from prometheus_client import REGISTRY
from redis.connection import AbstractConnection
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from accounts import token_cache
from accounts.services import token_revoke
from bounties import services
from bounties.caching import BOUNTY_DETAIL, BOUNTY_LIST
from core import hit_path, response_cache
from core.cache_keys import make_key
from core.hit_front import HitFront
from core.hit_path import CachedRead, HitPathMiddleware
from core.metrics import HIT_PATH_OUTCOMES
from tests.conftest import assert_error, client_for

pytestmark = pytest.mark.django_db

REQUEST_ID = "hit-path-test"
SHORT_PATH = "middleware"  # or "front": set per test by short_path
_DECLINED = object()


@pytest.fixture(autouse=True, params=["middleware", "front"])
def short_path(request, monkeypatch):
    """Which short path answers a GET made with ``hit_path=True``: the middleware inside Django's
    handler, or the WSGI front around it (then the middleware only applies the front's notes)."""
    monkeypatch.setattr(sys.modules[__name__], "SHORT_PATH", request.param)
    return request.param


class FrontHandler:
    """A test client's handler behind the hit path's WSGI front: the front answers what it can
    (as a plain HttpResponse of its status, headers and body) and hands the same environ, with
    its notes, to the client's own handler otherwise."""

    def __init__(self, handler):
        self.handler = handler
        self.front = HitFront(lambda environ, start_response: _DECLINED)

    def __call__(self, environ):
        started = {}
        body = self.front(environ, lambda status, headers: started.update(status=status, headers=headers))
        if body is _DECLINED:
            return self.handler(environ)
        response = HttpResponse(b"".join(body), status=int(started["status"][:3]))
        del response["Content-Type"]  # only the front's own headers
        for name, value in started["headers"]:
            response[name] = value
        response.front = True
        response.wsgi_request = WSGIRequest(environ)  # what the test client reads back
        return response


@contextmanager
def through_front(client):
    original = client.handler
    client.handler = FrontHandler(original)
    try:
        yield
    finally:
        client.handler = original


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def reset_counts() -> None:
    caches["ratelimit"].delete_pattern("rl:*")


@contextmanager
def one_window():
    """The clock stopped, so every request inside counts in one rate-limit window. A 1 h window
    still ends once an hour at a second fixed per client (django-ratelimit offsets it by the
    key's crc32: 127.0.0.1's ends at xx:30:32), and a CI run once crossed it mid-test."""
    with mock.patch("time.time", return_value=time.time()):
        yield


def urls(bounty) -> dict[str, str]:
    return {
        "list": "/api/bounties?limit=20",
        "search": "/api/bounties/search?q=logo",
        "detail": f"/api/bounties/{bounty.pk}",
        "stats": f"/api/profiles/{bounty.owner_id}/stats",
    }


def outcomes() -> dict[str, float]:
    return {outcome: metric("hit_path_requests_total", outcome=outcome) for outcome in HIT_PATH_OUTCOMES}


def answer(client, url: str, *, hit_path: bool, **headers):
    """The response, marked with the hit path's outcome (``.outcome``, None when it was off)
    and whether the hit path answered it (``.short``)."""
    before = outcomes()
    front = through_front(client) if hit_path and SHORT_PATH == "front" else nullcontext()
    with override_settings(HIT_PATH_ENABLED=hit_path), front:
        response = client.get(url, HTTP_X_REQUEST_ID=REQUEST_ID, **headers)
    moved = [outcome for outcome, count in outcomes().items() if count != before[outcome]]
    assert len(moved) <= 1, moved
    response.outcome = moved[0] if moved else None
    response.short = response.outcome == "served"
    # The front answers exactly what the hit path serves; the middleware never does then.
    assert getattr(response, "front", False) == (response.short and SHORT_PATH == "front")
    return response


def as_bytes(response) -> tuple:
    """Everything a client receives but the Date gunicorn adds: status, headers, body. A gzip
    body is compared decompressed, without its length: Django's GZipMiddleware pads every
    compressed body with up to 100 random bytes (BREACH), so no two are ever equal."""
    headers, body = dict(response.headers), response.content
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
        headers["Content-Length"] = "(random padding)"
    return response.status_code, sorted(headers.items()), body


def both_paths(client, url: str, *, before: int = 0, **headers) -> tuple:
    """The full path's and the hit path's answer to the same request, each with the rate-limit
    count where it was (``before`` requests already counted), on a clock stopped for the pair:
    X-RateLimit-Reset counts whole seconds, and a slow machine may cross one between them."""
    pair = []
    with mock.patch("time.time", return_value=time.time()):
        for hit_path_on in (False, True):
            reset_counts()
            for _ in range(before):
                client.get(url)
            pair.append(answer(client, url, hit_path=hit_path_on, **headers))
    return tuple(pair)


@contextmanager
def redis_commands():
    """Counts the commands (pipelines count once) sent to Redis inside the block."""
    sent = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = counting
    try:
        yield sent
    finally:
        AbstractConnection.send_packed_command = original


def warm(client, url: str) -> None:
    """Fill the entry (and, for a token, let the full path introduce it to this process)."""
    for _ in range(2):
        assert client.get(url).status_code == 200


@pytest.mark.parametrize("kind", ["list", "search", "detail", "stats"])
@pytest.mark.parametrize("who", ["anonymous", "token"])
@pytest.mark.parametrize("encoding", ["plain", "gzip"])
def test_a_hit_is_the_full_paths_answer_byte_for_byte(bounty, limits, api_client, kind, who, encoding):
    client = client_for(bounty.owner) if who == "token" else api_client
    url = urls(bounty)[kind]
    headers = {"HTTP_ACCEPT_ENCODING": "gzip, deflate"} if encoding == "gzip" else {}
    warm(client, url)

    full, short = both_paths(client, url, **headers)

    assert short.short and not full.short
    assert as_bytes(short) == as_bytes(full)
    assert (short.status_code, short["X-Cache"], short["X-RateLimit-Remaining"]) == (200, "hit", "99")
    assert short["X-Request-ID"] == REQUEST_ID
    assert short["X-Content-Type-Options"] == "nosniff" and short["X-Frame-Options"] == "DENY"
    if encoding == "gzip" and kind in ("list", "search"):
        assert short["Content-Encoding"] == "gzip"
        assert gzip.decompress(short.content) == answer(client, url, hit_path=True).content


@pytest.mark.parametrize("who", ["anonymous", "token"])
def test_a_304_is_the_full_paths_answer_byte_for_byte(bounty, limits, api_client, who):
    client = client_for(bounty.owner) if who == "token" else api_client
    url = urls(bounty)["list"]
    warm(client, url)
    etag = client.get(url)["ETag"]
    weak = client.get(url, HTTP_ACCEPT_ENCODING="gzip")["ETag"]  # what a client of the gzip body echoes

    for tag in (etag, weak):
        full, short = both_paths(client, url, HTTP_IF_NONE_MATCH=tag)
        assert short.short and not full.short
        assert short.status_code == 304 and short.content == b""
        assert as_bytes(short) == as_bytes(full)


def test_a_stale_answer_within_the_coalescing_window_is_the_same_on_both_paths(
    bounty, limits, api_client, settings
):
    settings.CACHE_PUBLIC_LAG_SECONDS = 30
    settings.CACHE_COALESCE_SECONDS = 30
    url = urls(bounty)["list"]
    warm(api_client, url)
    response_cache.bump([BOUNTY_LIST.scope()])  # a write elsewhere: the entry is now behind

    full, short = both_paths(api_client, url)

    assert short.short and not full.short
    assert short["X-Cache"] == "stale"
    assert as_bytes(short) == as_bytes(full)


@pytest.mark.parametrize("who", ["anonymous", "token"])
def test_an_entry_due_for_a_refresh_another_request_runs_is_served_stale_on_both_paths(
    bounty, limits, api_client, settings, who
):
    """Past the coalescing window an invalidated entry needs a refresh: the request that takes
    the recompute lock goes down the full path to run it; while it holds the lock every other
    request gets the stale entry, from the hit path too (not the full path's costlier stale)."""
    settings.CACHE_PUBLIC_LAG_SECONDS = 30
    settings.CACHE_COALESCE_SECONDS = 0
    client = client_for(bounty.owner) if who == "token" else api_client
    url = urls(bounty)["list"]
    warm(client, url)
    response_cache.bump([BOUNTY_LIST.scope()])  # a write elsewhere: the entry is now behind
    cache = caches[response_cache.CACHE_ALIAS]
    (entry_key,) = cache.keys(make_key("resp", BOUNTY_LIST.name, BOUNTY_LIST.version, "*"))
    refresher = cache.lock(response_cache.lock_name(entry_key), timeout=30)
    assert refresher.acquire(blocking=False)  # another request is refreshing it

    full, short = both_paths(client, url)

    assert short.short and not full.short
    assert (short["X-Cache"], full["X-Cache"]) == ("stale", "stale")
    assert as_bytes(short) == as_bytes(full)

    refresher.release()  # no refresh running: this request must take the lock and run it
    assert answer(client, url, hit_path=True).outcome == "miss"


@pytest.mark.parametrize("who", ["anonymous", "token"])
def test_a_429_is_the_full_paths_answer_byte_for_byte(bounty, limits, api_client, who):
    limits(2)
    client = client_for(bounty.owner) if who == "token" else api_client
    url = urls(bounty)["list"]
    warm(client, url)

    full, short = both_paths(client, url, before=2)

    assert (full.outcome, short.outcome) == (None, "limited")
    assert_error(short, 429, "throttled")
    assert short["Retry-After"] == short["X-RateLimit-Reset"]
    assert as_bytes(short) == as_bytes(full)


def test_an_accept_the_api_cannot_answer_gets_the_full_paths_406(bounty, limits, api_client):
    url = urls(bounty)["list"]
    warm(api_client, url)
    full, short = both_paths(api_client, url, HTTP_ACCEPT="text/html")

    assert not short.short
    assert short.status_code == 406
    assert as_bytes(short) == as_bytes(full)
    assert (
        answer(api_client, url, hit_path=True, HTTP_ACCEPT="text/html, application/json;q=0.9").status_code
        == 200
    )


@pytest.mark.parametrize("kind", ["list", "detail"])
def test_a_hit_is_one_redis_round_trip(bounty, limits, api_client, kind):
    url = urls(bounty)[kind]
    warm(api_client, url)

    with redis_commands() as full:
        assert answer(api_client, url, hit_path=False)["X-Cache"] == "hit"
    with redis_commands() as short:
        assert answer(api_client, url, hit_path=True)["X-Cache"] == "hit"

    assert len(short) == 1
    assert len(full) >= 3  # rate limit (SET NX, then INCR), the cache's MGET, a detail's view count


def test_both_paths_count_in_the_same_rate_limit_bucket(bounty, limits, api_client):
    limits(4)
    url = urls(bounty)["search"]
    warm(api_client, url)
    reset_counts()

    with one_window():
        remaining = [
            answer(api_client, url, hit_path=on)["X-RateLimit-Remaining"] for on in (True, False, True, False)
        ]
        refused = [answer(api_client, url, hit_path=on).status_code for on in (True, False)]

    assert remaining == ["3", "2", "1", "0"]
    assert refused == [429, 429]


def test_a_detail_view_is_counted_once_by_either_path_and_never_when_refused(
    bounty, limits, api_client, settings
):
    settings.VIEW_COUNT_FLUSH_SECONDS = 3600  # nothing flushes behind the test's back
    limits(6)
    url = urls(bounty)["detail"]
    reset_counts()
    with one_window():
        answer(api_client, url, hit_path=True)  # a miss: the full path computes and counts it
        answer(api_client, url, hit_path=True)  # a hit: counted in the round trip
        answer(api_client, url, hit_path=False)  # the full path
        response_cache.bump([BOUNTY_DETAIL.scope(bounty.pk)], hard=True)  # an operator's invalidation
        answer(api_client, url, hit_path=True)  # the round trip counts it, the full path recomputes
        answer(api_client, url, hit_path=True)
        answer(api_client, url, hit_path=True)  # the 6th: the last allowed
        assert answer(api_client, url, hit_path=True).status_code == 429
        assert answer(api_client, url, hit_path=False).status_code == 429

    services.bounty_views_flush()
    bounty.refresh_from_db()
    assert bounty.view_count == 6


def test_a_detail_hit_may_flush_the_view_counts(bounty, limits, api_client):
    url = urls(bounty)["detail"]
    warm(api_client, url)  # the first view took the flush lock and flushed
    get_redis_connection("default").delete(services._views_key("flush-lock"))

    answer(api_client, url, hit_path=True)

    bounty.refresh_from_db()
    assert bounty.view_count == 3


def test_a_revoked_token_is_refused_at_once_though_this_process_knew_it(bounty, limits, committed):
    client = client_for(bounty.owner)
    url = urls(bounty)["list"]
    warm(client, url)
    assert answer(client, url, hit_path=True).short

    with committed():
        token_revoke(raw_token=client.token)

    refused = answer(client, url, hit_path=True)
    assert_error(refused, 401)
    assert not refused.short


def test_a_token_the_process_has_not_seen_takes_the_full_path_once(bounty, limits):
    client = client_for(bounty.owner)
    url = urls(bounty)["stats"]
    assert client.get(url).status_code == 200  # fills the entry
    other = client_for(bounty.owner)  # a new token of the same user, and a new process
    first = answer(other, url, hit_path=True)
    second = answer(other, url, hit_path=True)

    assert (first["X-Cache"], second["X-Cache"]) == ("hit", "hit")
    assert (first.outcome, second.outcome) == ("new_token", "served")


def test_the_author_of_a_write_is_not_served_the_page_it_changed(bounty, limits, settings, committed):
    settings.CACHE_PUBLIC_LAG_SECONDS = 30
    settings.CACHE_COALESCE_SECONDS = 30
    author = client_for(bounty.owner)
    url = urls(bounty)["list"]
    warm(author, url)
    with committed():
        response = author.patch(
            f"/api/bounties/{bounty.pk}", {"title": "Design a flower shop"}, format="json"
        )
    assert response.status_code == 200

    page = answer(author, url, hit_path=True)

    assert not page.short  # the mark sends the author to the full path, which recomputes
    assert page["X-Cache"] == "miss" and "flower" in page.json()["results"][0]["title"]


def test_redis_down_sends_reads_to_postgresql(bounty, limits, own_redis, api_client):
    url = urls(bounty)["list"]
    warm(api_client, url)
    own_redis.stop()
    response = answer(api_client, url, hit_path=True)

    assert response.status_code == 200 and response["X-Cache"] == "miss"
    assert response.outcome == "redis"


def test_a_hit_is_measured_under_its_route(bounty, limits, api_client):
    url = urls(bounty)["detail"]
    warm(api_client, url)
    labels = {"method": "GET", "route": "/api/bounties/{id}", "status_code": "2xx"}
    before = metric("http_requests_total", **labels)
    hits = metric("cache_hits_total", cache_key_prefix="bounty-detail")

    answer(api_client, url, hit_path=True)

    assert metric("http_requests_total", **labels) == before + 1
    assert metric("cache_hits_total", cache_key_prefix="bounty-detail") == hits + 1


def test_a_view_the_hit_path_cannot_serve_as_declared_is_refused_at_start():
    class Private(APIView):
        permission_classes = [IsAuthenticated]
        cached_reads = {"get": CachedRead(BOUNTY_LIST, lambda request, kwargs: ())}

        def get(self, request):
            raise AssertionError("never run")

    with pytest.raises(ImproperlyConfigured, match="public reads only"):
        hit_path._route_of(Private.as_view())


def test_middleware_it_would_skip_is_refused_at_start(settings):
    at = settings.MIDDLEWARE.index("core.hit_path.HitPathMiddleware")
    settings.MIDDLEWARE = [*settings.MIDDLEWARE[: at + 1], "django.middleware.http.ConditionalGetMiddleware"]

    with pytest.raises(ImproperlyConfigured, match="ConditionalGetMiddleware"):
        HitPathMiddleware(lambda request: None)


def test_caches_on_different_redis_servers_are_refused_at_start(settings):
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {**settings.CACHES["ratelimit"], "LOCATION": "redis://127.0.0.1:1/0"},
    }

    with pytest.raises(ImproperlyConfigured, match="one Redis for all"):
        HitPathMiddleware(lambda request: None)


def test_with_rate_limits_off_a_hit_counts_nothing_and_matches_the_full_path(bounty, api_client, settings):
    settings.RATELIMIT_ENABLE = False
    url = urls(bounty)["search"]
    warm(api_client, url)

    full, short = both_paths(api_client, url)

    assert short.short and not full.short
    assert "X-RateLimit-Limit" not in short
    assert as_bytes(short) == as_bytes(full)


def test_a_token_eviction_waiting_for_retry_holds_back_token_reads_only(bounty, limits, api_client):
    signed_in = client_for(bounty.owner)
    url = urls(bounty)["list"]
    warm(api_client, url)
    warm(signed_in, url)
    token_cache._missed.add("an-eviction-redis-missed")
    try:
        assert answer(api_client, url, hit_path=True).outcome == "served"
        assert answer(signed_in, url, hit_path=True).outcome == "redis"  # the full path retries it
        assert not token_cache._missed
        assert answer(signed_in, url, hit_path=True).outcome == "served"
    finally:
        token_cache._missed.clear()


def test_a_connection_redis_dropped_is_made_again_and_the_hit_still_served(bounty, limits, api_client):
    url = urls(bounty)["list"]
    warm(api_client, url)
    assert answer(api_client, url, hit_path=True).short  # this thread's connection is open
    get_redis_connection("default").client_kill_filter(_type="normal", skipme=True)

    again = answer(api_client, url, hit_path=True)

    assert again.outcome == "served" and again["X-Cache"] == "hit"


def test_an_error_reply_leaves_the_connection_in_step_for_the_next_request(bounty, limits, api_client):
    url = urls(bounty)["list"]
    warm(api_client, url)
    reset_counts()
    redis = get_redis_connection("ratelimit")
    with one_window():
        answer(api_client, url, hit_path=True)
        [key] = redis.keys("*rl:*")
        redis.delete(key)
        redis.hset(key, "not", "a counter")  # INCR now answers WRONGTYPE, before the MGET's reply
        failed = answer(api_client, url, hit_path=True)
        redis.delete(key)
        response_cache.retry_redis_now()
        served = answer(api_client, url, hit_path=True)

    assert failed.outcome == "redis" and failed.status_code == 200
    # Every reply of the failed pipeline was read: this one's are its own.
    assert served.short and served["X-Cache"] == "hit" and served["X-RateLimit-Remaining"] == "99"
    assert served.content == answer(api_client, url, hit_path=False).content

"""The lean hit path: a cached GET answered in one Redis round trip, before the rest of the stack.

A cache hit used to cost three Redis round trips (django-ratelimit's ``SET NX`` and ``INCR``,
then the cache's ``MGET``) and the whole middleware stack and DRF dispatch around a body that
was already rendered in Redis (docs/perf/hit-path-before.md). :class:`HitPathMiddleware` sits
after the security middleware. For a GET of a route whose view names it in ``cached_reads`` it
sends one pipeline of commands (one write, one round trip) that takes:

- the rate-limit count: django-ratelimit's own key, window and expiry, so both paths count in
  the same bucket (``core.ratelimit.PendingCount``);
- the generation counter, the entry, its recompute lock, the reader's read-your-writes mark and,
  for a bearer token, its cached owner (one ``MGET``);
- the route's side effect, if any (a bounty detail counts its view).

When the freshness contract lets the entry be answered as it is (``servable`` and
``answer_as_is`` in core.response_cache, the same code ``fetch`` runs), it builds the response
the full path would build (an entry due for a refresh that another request is running, the
lock being held, is answered stale as ``fetch`` answers it): status, body, ETag and 304,
X-Cache, Cache-Control, the rate-limit state (the headers middleware outside writes
X-RateLimit-*), and the headers of the middleware and DRF it skips (Content-Length,
X-Frame-Options, Allow). Everything outside it (metrics, request id, gzip, rate-limit headers,
security headers) runs as for any request.

Anything else goes down the full path, with what the round trip already did left on the request,
so nothing is counted twice: a miss or an entry that needs a refresh nobody is running (the
request takes the lock on the full path and refreshes after its response), a request over its
limit (the full path answers the 429 in the API's error shape with Retry-After), an Accept the API
cannot answer, a token this process has not seen authenticated yet (the full path
authenticates it, and this process then remembers its owner), Redis trouble (the full path's
cache layer counts it and pauses). A token's owner remembered here grants nothing by itself:
every request reads the token's cached owner in the same round trip and takes the short path
only while it still names that user (a revoked token's tombstone or an expired entry sends it
down the full path, which answers 401 or looks the token up again).

As served (bountyexpo.wsgi), the hit path's WSGI front (core.hit_front) runs ``attempt`` before
Django's handler and answers the hits itself; this middleware then only applies what the front
did to the requests it passed on (``FRONT_NOTES``), and answers hits where the front is off or
absent (``HIT_PATH_FRONT=0``, the test client, ASGI).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any, Protocol

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.cache import patch_vary_headers
from django_redis import get_redis_connection
from hiredis import pack_command
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny

from accounts import token_cache
from accounts.authentication import BearerTokenAuthentication, bearer_token
from accounts.tokens import hash_token
from core import metrics, response_cache
from core.ratelimit import TieredRateLimit, pending_count, tier_for
from core.response_cache import CachedKind, Lookup

# The middleware that may follow this one: what each does to a cached GET's response is done
# here too (see _finish). Another one after it would be skipped on hits: refused at start-up.
FOLLOWING = {
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files only
    "django.contrib.sessions.middleware.SessionMiddleware",  # the API never reads the session
    "django.middleware.common.CommonMiddleware",  # Content-Length
    "django.middleware.csrf.CsrfViewMiddleware",  # nothing for a GET that never asks for a token
    "django.contrib.auth.middleware.AuthenticationMiddleware",  # a lazy request.user
    "django.contrib.messages.middleware.MessageMiddleware",  # the API keeps no messages
    "django.middleware.clickjacking.XFrameOptionsMiddleware",  # X-Frame-Options
    "core.db.replicas.ReplicaMiddleware",  # routes a GET's database reads: a hit makes none
}
# URL matches kept per path (a detail's path names one bounty): forgotten all at once when full.
PATH_MEMORY = 10_000
# Most token owners remembered (_token_users; a forgotten token takes the full path once).
TOKEN_MEMORY = 10_000


@dataclass(frozen=True)
class Tally:
    """A count every read of a route adds, done in the hit path's round trip: ``HINCRBY
    hash_key field 1``, then ``SET lock_key NX EX lock_seconds``, whose winner flushes the counts
    somewhere durable (a bounty detail's views)."""

    hash_key: str
    field: str
    lock_key: str
    lock_seconds: int


class SideEffect(Protocol):
    """Work every read of a route does (a detail counts its view)."""

    def tally(self, url_kwargs: dict) -> Tally:
        """What to count for this request (keys with the cache's prefix and version)."""

    def flush(self) -> None:
        """This request took the flush lock: move the counts."""

    def undo(self, url_kwargs: dict) -> None:
        """The request was refused (over its rate limit): take the count back."""


@dataclass(frozen=True)
class CachedRead:
    """A view action whose GET the short path may answer from ``kind``'s entry for
    ``parts(request, url_kwargs)``. The action answers through :meth:`respond`, so both paths
    read the same entry by construction."""

    kind: CachedKind
    parts: Callable[[HttpRequest, dict], tuple]
    side_effect: SideEffect | None = None

    def respond(self, request, url_kwargs: dict, compute: Callable[[], Any]) -> HttpResponse:
        """The full path's answer: core.response_cache.cached_response for this entry."""
        parts = self.parts(request, url_kwargs)
        return response_cache.cached_response(request, self.kind, parts, compute)


def count_outcome(outcome: str) -> None:
    """One request in ``hit_path_requests_total``."""
    metrics.child(metrics.HIT_PATH, outcome).inc()


# The environ key under which the WSGI front (core.hit_front) leaves what it did with a request
# it then passed on (a rate-limit count, a view counted, a token to learn): the middleware
# applies it to the request instead of trying the short path a second time.
FRONT_NOTES = "bountyexpo.hit_path_notes"
NOTE_NAMES = ("rate_limit_taken", "hit_path_effect_done", "hit_path_flush", "hit_path_token")
# Bearer tokens whose owner this process saw the full path authenticate: key hash -> user id.
# One per process (the front and the middleware share it); forgotten all at once when full.
_token_users: dict[str, int] = {}


@dataclass(frozen=True)
class _Route:
    read: CachedRead
    tier: str | None  # None: the view is not rate-limited
    # DRF's default response headers of the view: Vary (patched in) and the others (set).
    vary: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]


class HitPathMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        following = settings.MIDDLEWARE[settings.MIDDLEWARE.index(f"{__name__}.HitPathMiddleware") + 1 :]
        unknown = [name for name in following if name not in FOLLOWING]
        if unknown:
            raise ImproperlyConfigured(
                f"{', '.join(unknown)} after core.hit_path.HitPathMiddleware would be skipped by cached "
                "hits: place it before, or teach the hit path what it does (core/hit_path.py FOLLOWING)."
            )
        aliases = (response_cache.CACHE_ALIAS, "default", settings.RATELIMIT_USE_CACHE)
        if len({str(settings.CACHES[alias]["LOCATION"]) for alias in aliases}) != 1:
            raise ImproperlyConfigured(
                f"the hit path reads the caches {aliases} in one round trip: one Redis for all"
            )
        self._routes: dict[Callable, _Route | None] = {}
        self._matches: dict[str, Any] = {}  # path -> its URL match (bounded, see _match)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        notes = request.META.get(FRONT_NOTES)
        if notes is not None:
            # The WSGI front (core.hit_front) already tried this request and left what it did.
            request.__dict__.update(notes)
        elif request.method == "GET" and settings.HIT_PATH_ENABLED:
            route, match = self._match(request)
            if route is not None:
                served, outcome = self.attempt(request, route, match)
                count_outcome(outcome)
                if served is not None:
                    response = response_cache.respond(request, served.body, served.etag, served.state)
                    response = _finish(response, route)
                    if flush := getattr(request, "hit_path_flush", None):
                        flush()
                    return response
        response = self.get_response(request)
        if flush := getattr(request, "hit_path_flush", None):
            flush()  # after the view, as the view itself would have: its answer is unchanged
        key_hash = getattr(request, "hit_path_token", None)
        user = getattr(request, "user", None)
        if key_hash is not None and response.status_code < 400 and user is not None and user.is_authenticated:
            if len(_token_users) >= TOKEN_MEMORY:
                _token_users.clear()
            _token_users[key_hash] = user.pk
        return response

    def _match(self, request: HttpRequest):
        """The cached read this request asks for and its URL match, or (None, None)."""
        return self.match_path(request.path_info)

    def match_path(self, path: str):
        """The cached read of this path and its URL match, or (None, None)."""
        match = self._matches.get(path)
        if match is None:
            try:
                match = resolve(path)
            except Resolver404:
                return None, None
            if len(self._matches) >= PATH_MEMORY:
                self._matches.clear()
            self._matches[path] = match
        try:
            route = self._routes[match.func]
        except KeyError:
            route = self._routes[match.func] = _route_of(match.func)
        return route, match

    def attempt(self, request, route: _Route, match, parts: tuple | None = None) -> tuple[Lookup | None, str]:
        """What the cache lets this request be answered with, or None for the full path (with
        what was done noted on the request), and the outcome for the metrics. ``request`` is an
        HttpRequest or the WSGI front's stand-in (META, scheme, get_host(), GET); ``parts``
        the entry's parts when the caller already knows them."""
        kind = route.read.kind
        if kind.ttl <= 0 or not _acceptable(request.META.get("HTTP_ACCEPT")):
            return None, "other"  # cache off; or DRF's negotiation answers 406
        if response_cache.reads_paused():
            return None, "redis"
        try:
            raw_token = bearer_token(request)
            request.get_host()  # as CommonMiddleware does first on the full path
        except (AuthenticationFailed, DisallowedHost):
            return None, "other"  # the full path answers 401 or 400
        user_id = key_hash = None
        if raw_token is not None:
            if token_cache.evictions_pending():  # the full path retries them before trusting Redis
                return None, "redis"
            key_hash = hash_token(raw_token)
            user_id = _token_users.get(key_hash)
            if user_id is None:
                request.hit_path_token = key_hash  # remembered once the full path authenticates it
                return None, "new_token"
        if parts is None:
            parts = route.read.parts(request, match.kwargs)
        redis = _redis()
        count = (
            pending_count(request, route.tier, user_id, redis.rate_key) if route.tier is not None else None
        )
        effect = route.read.side_effect
        replies = self._round_trip(redis, kind, parts, count, user_id, key_hash, effect, match.kwargs)
        if replies is None:
            return None, "redis"
        count_reply, (generation, entry, mark, owner, refreshing), flush = replies
        usage = None if count is None else count.usage(count_reply)
        if usage is not None:
            request.rate_limit_taken = (count, usage)  # the full path's throttle counts no more
        limited = usage is not None and usage["should_limit"]
        stranger = key_hash is not None and not _same_owner(owner, user_id)
        if effect is not None:
            if limited or stranger:
                # The full path refuses it (429), or decides who asks and then runs the view,
                # which does the work itself.
                effect.undo(match.kwargs)
            else:
                request.hit_path_effect_done = True
                request.hit_path_flush = effect.flush if flush else None
        if stranger:
            _token_users.pop(key_hash, None)  # revoked, expired or evicted: the full path decides
            request.hit_path_token = key_hash
            return None, "new_token"
        if limited:
            return None, "limited"
        now = time.time()
        entry = None if generation is None else response_cache.servable(entry, generation, mark, now)
        state = response_cache.answer_as_is(entry, generation, now, refreshing=refreshing)
        if state is None:
            return None, "miss"
        response_cache.count_answer(kind, state)
        request.resolver_match = match  # the metrics' route label
        if usage is not None and usage["limit"]:
            request.rate_limit = count.state(usage)  # RateLimitHeadersMiddleware writes X-RateLimit-*
        return Lookup(state, entry.body, entry.etag), "served"

    def _round_trip(self, redis: _Clients, kind, parts, count, user_id, key_hash, effect, url_kwargs):
        """One round trip (a pipeline); returns (count, (generation, entry, mark, owner,
        refreshing), flush) decoded, or None when Redis failed (counted, and the response cache
        pauses; nothing is taken as done then)."""
        scope, scope_key, entry_key, lock_key = _entry_keys(redis, kind, parts)
        keys = [scope_key, entry_key, lock_key]
        with_mark = user_id is not None and settings.CACHE_PUBLIC_LAG_SECONDS > 0
        if with_mark:
            keys.append(redis.response_key(response_cache.mark_key(user_id, scope)))
        if key_hash is not None:
            keys.append(redis.default_key(token_cache.token_cache_key(key_hash)))
        # INCR and EXPIRE NX leave the counter as django-ratelimit's add + incr would.
        commands = []
        if count is not None:
            commands += [("INCR", count.key), ("EXPIRE", count.key, count.expiry, "NX")]
        commands.append(("MGET", *keys))
        if effect is not None:
            tally = effect.tally(url_kwargs)
            commands += [
                ("HINCRBY", tally.hash_key, tally.field, 1),
                ("SET", tally.lock_key, "1", "NX", "EX", tally.lock_seconds),
            ]
        try:
            replies = response_cache.redis_call("hit path", kind.name, lambda: redis.pipeline(commands))
        except response_cache.Unavailable:
            return None
        counted = replies[0] if count is not None else None
        values = replies[2 if count is not None else 0]
        flush = effect is not None and replies[-1] is not None  # this request took the flush lock
        refreshing = values[2] is not None  # the lock holds a token, not a cached value: not decoded
        values = [None if value is None else redis.decode(value) for value in values[:2] + values[3:]]
        generation, entry = values[0], values[1]
        mark = values[2] if with_mark else None
        owner = values[-1] if key_hash is not None else None
        return counted, (generation, entry, mark, owner, refreshing), flush


@dataclass(frozen=True)
class _Clients:
    """The Redis client and key makers of the three cache aliases (they share one Redis)."""

    pipeline: Callable[[list[tuple]], list]  # _pipeline on the response cache's Redis
    response_key: Callable[[str], str]
    default_key: Callable[[str], str]
    rate_key: Callable[[str], str]
    decode: Callable[[bytes], Any]


_clients: _Clients | None = None


def _redis() -> _Clients:
    """Looked up once per process, not per request (``caches[alias]`` is a per-thread lookup);
    a change of CACHES (tests) looks them up again."""
    global _clients
    if _clients is None:
        responses = caches[response_cache.CACHE_ALIAS]
        _clients = _Clients(
            partial(_pipeline, get_redis_connection(response_cache.CACHE_ALIAS)),
            responses.make_key,
            caches["default"].make_key,
            caches[settings.RATELIMIT_USE_CACHE].make_key,
            responses.client.decode,
        )
    return _clients


def _entry_keys(redis: _Clients, kind: CachedKind, parts: tuple) -> tuple[str, str, str, str]:
    """The counter guarding ``parts`` (gen:v1:...), its Redis key, the entry's (a digest of the
    parts) and its recompute lock's (response_cache.fetch's ``cache.lock``): the same for every
    request of a page, so computed once per page and process (forgotten all at once when full,
    and with the clients)."""
    keys = _keys.get((kind.name, parts))
    if keys is None:
        scope, entry = kind.scope(*parts), kind.key(*parts)
        keys = (
            scope,
            redis.response_key(scope),
            redis.response_key(entry),
            redis.response_key(response_cache.lock_name(entry)),
        )
        if len(_keys) >= PATH_MEMORY:
            _keys.clear()
        _keys[(kind.name, parts)] = keys
    return keys


_keys: dict[tuple[str, tuple], tuple[str, str, str, str]] = {}


def _pipeline(client, commands: list[tuple]) -> list:
    """``commands`` in one write on this thread's own connection to ``client``'s Redis, and their
    replies: one round trip (a pipeline without MULTI: nothing here needs the commands atomic).
    It skips what redis-py wraps around every command (its retry policy object, observability
    hooks, and the pool's checkout, which polls the socket: 7 us of CPU a hit) and a Lua script
    (an EVALSHA cost Redis 15 us against 2.5 us for the same commands sent plainly). A broken
    connection is dropped and the commands sent once more on a fresh one, as redis-py's default
    retry does; an error reply is raised once every reply is read, and anything else leaves the
    connection closed, so no reply is ever read by the wrong request."""
    connection = _thread_connection(client)
    try:
        return _send(connection, commands)
    except (RedisConnectionError, RedisTimeoutError):
        connection.disconnect()
        return _send(connection, commands)
    except ResponseError:
        raise
    except BaseException:
        connection.disconnect()
        raise


_local = threading.local()


def _thread_connection(client):
    """This thread's connection to ``client``'s Redis, made like the pool's and kept outside it
    (a thread serves one request at a time); a new one for another client (tests change CACHES)
    or after a fork. Closed when the thread ends."""
    held = getattr(_local, "held", None)
    if held is None or held[0] is not client or held[1].pid != os.getpid():
        pool = client.connection_pool
        held = _local.held = (client, pool.connection_class(**pool.connection_kwargs))
    return held[1]


def _send(connection, commands: list[tuple]) -> list:
    # hiredis packs each command in C, as redis-py would, in a quarter of redis-py's time.
    connection.send_packed_command([b"".join(map(pack_command, commands))])
    replies, failed = [], None
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except ResponseError as error:
            failed = failed or error
            replies.append(None)
    if failed is not None:
        raise failed
    return replies


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs) -> None:
    global _clients
    if setting in ("CACHES", "RATELIMIT_USE_CACHE"):
        _clients = None
        _keys.clear()


def _route_of(func: Callable) -> _Route | None:
    """What the short path needs to answer for this view function (None: not a cached read)."""
    cls = getattr(func, "cls", None)
    reads = getattr(cls, "cached_reads", None)
    if not reads:
        return None
    actions = getattr(func, "actions", None)
    name = actions.get("get") if actions else "get"
    read = reads.get(name)
    if read is None:
        return None
    # The view as DRF builds it for a request (ViewSetMixin.as_view, View.setup), never run.
    view = cls(**func.initkwargs)
    if actions:
        view.action_map = {**actions, "head": actions.get("head", actions["get"])}
        for method, action in view.action_map.items():
            setattr(view, method, getattr(view, action))
        view.action = name
    elif not hasattr(view, "head"):
        view.head = view.get
    where = f"{cls.__name__}.cached_reads[{name!r}]"
    if not all(isinstance(permission, AllowAny) for permission in view.get_permissions()):
        raise ImproperlyConfigured(f"{where}: the hit path serves public reads only (AllowAny)")
    if [type(auth) for auth in view.get_authenticators()] not in ([], [BearerTokenAuthentication]):
        raise ImproperlyConfigured(f"{where}: the hit path knows bearer tokens only")
    throttles = [type(throttle) for throttle in view.get_throttles()]
    if throttles not in ([], [TieredRateLimit]):
        raise ImproperlyConfigured(f"{where}: the hit path counts core.ratelimit.TieredRateLimit only")
    tier = tier_for(SimpleNamespace(method="GET"), view) if throttles else None
    headers = dict(view.default_response_headers)
    vary = tuple(part.strip() for part in headers.pop("Vary", "").split(",") if part.strip())
    return _Route(read, tier, vary, tuple(headers.items()))


def _finish(response: HttpResponse, route: _Route) -> HttpResponse:
    """What DRF's finalize_response and the middleware after this one add to a cached GET."""
    if route.vary:
        patch_vary_headers(response, route.vary)
    for name, value in route.headers:
        response[name] = value
    if not response.has_header("Content-Length"):  # CommonMiddleware
        response["Content-Length"] = str(len(response.content))
    if response.get("X-Frame-Options") is None:  # XFrameOptionsMiddleware
        response["X-Frame-Options"] = getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()
    return response


# Media ranges DRF's negotiation matches to its only renderer, application/json.
_JSON_RANGES = {"*/*", "application/*", "application/json"}


def _acceptable(accept: str | None) -> bool:
    """True when DRF would pick the JSON renderer for this Accept header (absent: */*)."""
    if accept is None:
        return True
    return any(part.split(";", 1)[0].strip() in _JSON_RANGES for part in accept.split(","))


def _same_owner(owner: Any, user_id: int | None) -> bool:
    """The token's cached owner still names ``user_id`` and has not expired."""
    return (
        isinstance(owner, dict)
        and owner.get("expires_at", 0) > time.time()
        and owner.get("user", {}).get("id") == user_id
        and owner["user"].get("is_active", False)
    )

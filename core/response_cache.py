"""Cached JSON responses in Redis: versioned keys, invalidation by generation counters on
commit, stale-while-revalidate with one recompute per key, ETags and X-Cache.

How an entry stays correct
--------------------------
Each cached kind (bounty detail, list pages, ...) names a *scope* whose generation counter
guards it: one counter per bounty for details, one for the whole family of list and search
pages. The entry stores the generation it was computed under and the time its computation
started, and a read fetches the entry and the counter in one MGET. A write bumps the counter
once its transaction commits (``transaction.on_commit``). Because a reader takes the
generation *before* it queries PostgreSQL, a write that commits while the reader is computing
leaves that result behind the counter: the read-compute-store race a plain delete leaves open
is closed.

The freshness contract (README "Caching: the freshness contract")
-----------------------------------------------------------------
An entry behind its counter misses a write that committed after the entry's computation
started. It may still be served (``X-Cache: stale``) while it is younger than
CACHE_PUBLIC_LAG_SECONDS, so every missed write is less than that old: nobody is served a page
that hides a write older than the lag, and with 0 an invalidated entry is never served. Within
the lag one request (the holder of a short Redis lock) refreshes it *after* sending its own
response, and an entry younger than CACHE_COALESCE_SECONDS is not refreshed at all: a page
read all the time is recomputed at most about once per CACHE_COALESCE_SECONDS however many
writes arrive, and no reader waits for it.

Read-your-writes: when a write commits, each of its authors (the signed-in user of the request,
and the people the row belongs to) gets a mark ``wrote:<user>:<scope>`` holding the generation
the write moved the counter to, kept for the lag. A signed-in reader's MGET takes the mark too,
and an entry computed under an older generation is never served to them: they get a page
computed after their write, which is then stored for everyone.

Keys (built here, from core.cache_keys.make_key) carry the schema version and a version
derived from the serializer's fields, so a deploy that changes a payload's shape reads
fresh keys instead of old shapes.

Expiry and stampedes
--------------------
An entry is fresh for the kind's TTL and kept CACHE_STALE_SECONDS longer. When it is expired
but within that grace, every request gets the expired value (``X-Cache: stale``) and the
holder of the lock refreshes it after its response is sent. When there is no servable entry at
all, the requests that lose the lock wait up to CACHE_LOCK_WAIT_SECONDS for the winner's
result rather than all querying PostgreSQL.

Redis down
----------
Every Redis failure is counted (``cache_errors_total{cache_key_prefix=<kind or family>}``) and the request
is answered from PostgreSQL. After a failure this process skips Redis for reads for
CACHE_RETRY_SECONDS, so an outage costs one timeout per process per interval, not per request.
Invalidations always try Redis; one that fails is kept and retried by the process before it
serves from the cache again (lost only if the process exits first).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.functional import cached_property
from django.utils.http import parse_etags
from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import LockError, RedisError
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer

from core import metrics
from core.cache_keys import make_key
from core.db import replicas
from core.request_id import get_current_request

logger = logging.getLogger("bountyexpo.cache")

CACHE_ALIAS = "responses"
REDIS_ERRORS = (RedisError, ConnectionInterrupted, OSError)
# Generation counters outlive the entries they guard. One that expires (or is evicted) restarts
# from the clock, which only makes the entries it guarded unreachable: safe, so bumps leave
# the TTL alone.
GENERATION_TTL = 24 * 60 * 60
# A hard invalidation (an operator's, from the perf admin) moves a counter on by this much: an
# entry that far behind is never served, not even within the public lag. Writes move it by 1.
# Small enough that a counter restarting after GENERATION_TTL (at the clock, in microseconds:
# 8.64e10 more than a day earlier) still starts above every value it held, as long as fewer
# than 86 hard invalidations hit one counter in a day; a restart far above reads as hard too,
# which only means a miss instead of a stale answer.
HARD_STEP = 10**9
_WAIT_STEP = 0.02


@dataclass(frozen=True)
class CachedKind:
    """One kind of cached payload.

    ``name`` is the key prefix (and the metrics label), ``ttl_setting`` the settings name of
    its TTL in seconds (0 turns caching off), ``serializer`` the serializer whose fields make
    the payload (part of the key's version), ``family`` set for kinds invalidated as a whole,
    ``scope_parts`` set when only the first that many of an entry's parts name its counter
    (a user's pages of every query share the user's).
    """

    name: str
    ttl_setting: str
    serializer: type | None = None
    family: str | None = None
    scope_parts: int | None = None

    def __post_init__(self) -> None:
        # Each kind's counters exist from process start (at 0), so rate alerts see data.
        metrics.touch_cache_prefix(self.name)
        if self.family is not None:
            metrics.CACHE_ERRORS.labels(self.family)

    @property
    def ttl(self) -> int:
        return getattr(settings, self.ttl_setting)

    @cached_property
    def version(self) -> str:
        """A short digest of the serializer's field names and types."""
        if self.serializer is None:
            return "0"
        fields = self.serializer().fields
        shape = ",".join(f"{name}:{type(fields[name]).__name__}" for name in fields)
        return hashlib.blake2b(f"{self.serializer.__name__}({shape})".encode(), digest_size=4).hexdigest()

    def key(self, *parts: object) -> str:
        digest = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
        return make_key("resp", self.name, self.version, digest)

    def scope(self, *parts: object) -> str:
        """The generation counter guarding the entry for ``parts``."""
        if self.family is not None:
            return make_key("gen", self.family)
        return make_key("gen", self.name, *parts[: self.scope_parts])


@dataclass
class Entry:
    generation: int
    fresh_until: float
    etag: str
    body: bytes
    # When the computation started (before the generation was read): every write the entry
    # misses committed after it. Entries stored before this field existed read 0: too old.
    computed_at: float = 0.0


@dataclass
class _Breaker:
    """Skip Redis in this process for a while after a failure."""

    open_until: float = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self) -> None:
        self.open_until = time.monotonic() + settings.CACHE_RETRY_SECONDS


_breaker = _Breaker()


def reads_paused() -> bool:
    """True while this process skips Redis for reads (after a failure, or with invalidations
    still to retry): a reader must go through :func:`fetch`, which knows what to do."""
    return bool(_missed_bumps) or _breaker.is_open()


def retry_redis_now() -> None:
    """Forget an earlier Redis failure in this process (tests, and after a known recovery)."""
    _breaker.open_until = 0.0


class _Unavailable(Exception):
    pass


def _redis(operation: str, prefix: str, call: Callable[[], Any], *, skip_when_down: bool = True) -> Any:
    """Run one Redis call for the kind (or invalidation family) ``prefix``; a failure is
    counted under that prefix, trips the breaker and raises _Unavailable."""
    if skip_when_down and _breaker.is_open():
        raise _Unavailable
    try:
        return call()
    except LockError:
        raise  # a lock that expired under a long recompute: not a Redis failure
    except REDIS_ERRORS as exc:
        metrics.CACHE_ERRORS.labels(prefix).inc()
        logger.warning("response cache %s failed, serving from PostgreSQL: %s", operation, exc)
        _breaker.trip()
        raise _Unavailable from exc


# For callers outside this module that talk to the same Redis (core.hit_path).
redis_call = _redis
Unavailable = _Unavailable


def _prefix_of(scope: str) -> str:
    """The kind or family a generation counter guards (``gen:v1:<name>:...``): the metrics label."""
    parts = scope.split(":")
    return parts[2] if len(parts) > 2 else scope


def _cache():
    return caches[CACHE_ALIAS]


def _new_generation() -> int:
    # Microseconds since the epoch: a counter that vanished (expired, evicted, Redis restarted)
    # restarts above every value it held, so entries from before can never match it again.
    return time.time_ns() // 1000


def _current_generation(scope: str, found: int | None) -> int:
    if found is not None:
        return found
    cache = _cache()
    initial = _new_generation()
    if _redis(
        "init generation", _prefix_of(scope), lambda: cache.add(scope, initial, timeout=GENERATION_TTL)
    ):
        return initial
    return _redis("get generation", _prefix_of(scope), lambda: cache.get(scope))  # another request started it


def etag_for(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def render(data: Any) -> bytes:
    return JSONRenderer().render(data)


def _not_modified(request: HttpRequest, etag: str) -> bool:
    return not_modified(request.META.get("HTTP_IF_NONE_MATCH"), etag)


def not_modified(header: str | None, etag: str) -> bool:
    """True when an If-None-Match header names ``etag`` (or ``*``)."""
    if not header:
        return False
    tags = parse_etags(header)
    # Weak comparison: GZipMiddleware weakens the ETag it sends (W/"..."), and clients echo it.
    return "*" in tags or etag in {tag.removeprefix("W/") for tag in tags}


def cache_control(request: HttpRequest) -> str:
    """What browsers and shared caches may do with a cached read's response (README "Edge
    caching"). Anonymous: the public body, which a shared cache may serve for
    EDGE_CACHE_SECONDS (s-maxage) and a little longer while revalidating or while the app fails;
    browsers revalidate each time (max-age=0, ETag). Signed in: the reader's own view (their
    writes at once, the owner's private profile), kept by the browser only (private) and
    revalidated before each use."""
    if "HTTP_AUTHORIZATION" in request.META:
        return "private, no-cache"
    if settings.EDGE_CACHE_SECONDS <= 0:
        return "no-cache"
    return (
        f"public, max-age=0, s-maxage={settings.EDGE_CACHE_SECONDS}, "
        f"stale-while-revalidate={settings.EDGE_STALE_WHILE_REVALIDATE_SECONDS}, "
        f"stale-if-error={settings.EDGE_STALE_IF_ERROR_SECONDS}"
    )


def respond(request: HttpRequest, body: bytes, etag: str, state: str) -> HttpResponse:
    """The response of a cached read (a hit, a stale entry or a computed one) or of a
    deliberately uncached one: ETag and 304, X-Cache, and its caching headers. A signed-in
    caller may get another body than the anonymous one (their writes at once, their own
    profile), so every such response varies on Authorization."""
    if _not_modified(request, etag):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["X-Cache"] = state
    response["Cache-Control"] = cache_control(request)
    response["Vary"] = "Authorization"
    return response


@dataclass
class Lookup:
    state: str  # hit | stale | miss
    body: bytes
    etag: str
    # Set on the one stale lookup that holds the recompute lock: call it once the response is
    # sent (cached_response does, from the response's close()).
    refresh: Callable[[], None] | None = None


def lock_name(key: str) -> str:
    """The recompute lock of the entry at ``key``: held while one request computes or refreshes
    it (core.hit_path reads it to serve the stale entry meanwhile)."""
    return f"{key}:lock"


def mark_key(user_id: int, scope: str) -> str:
    """The read-your-writes mark of ``user_id`` for the counter ``scope`` (gen:v1:<...>)."""
    return make_key("wrote", user_id, *scope.split(":")[2:])


def fetch(
    kind: CachedKind, parts: tuple, compute: Callable[[], Any], *, reader_id: int | None = None
) -> Lookup:
    """The payload for ``parts``: from Redis when fresh, or when stale within the freshness
    contract (see the module docstring), else ``compute()`` rendered and stored. ``reader_id``
    is the signed-in reader, who always sees their own writes. Exceptions of ``compute`` (404,
    validation) propagate and nothing is stored."""
    if kind.ttl <= 0:
        return _computed(kind, compute)
    cache = _cache()
    key, scope = kind.key(*parts), kind.scope(*parts)
    lag = settings.CACHE_PUBLIC_LAG_SECONDS
    mark = mark_key(reader_id, scope) if reader_id is not None and lag > 0 else None
    started = time.time()
    try:
        if _missed_bumps:
            if _breaker.is_open():  # still within the pause after a failure: no retry yet
                raise _Unavailable
            _retry_missed_bumps()
        found = _redis("read", kind.name, lambda: cache.get_many([scope, key, *([mark] if mark else [])]))
        generation = _current_generation(scope, found.get(scope))
    except _Unavailable:
        return _computed(kind, compute)
    now = time.time()
    entry = servable(found.get(key), generation, found.get(mark) if mark else None, now)
    state = answer_as_is(entry, generation, now)
    if state is not None:
        count_answer(kind, state)
        return Lookup(state, entry.body, entry.etag)

    # Not thread-local: the refresh that releases it may run after this call returns.
    lock = cache.lock(lock_name(key), timeout=settings.CACHE_LOCK_SECONDS, blocking=False, thread_local=False)
    try:
        acquired = _redis("lock", kind.name, lock.acquire)
    except _Unavailable:
        return _computed(kind, compute)
    if entry is not None:  # expired within the grace, or behind within the lag
        metrics.CACHE_STALE.labels(kind.name).inc()
        refresh = _refresher(kind, compute, key, scope, generation, started, lock) if acquired else None
        return Lookup("stale", entry.body, entry.etag, refresh)
    if not acquired:
        waited = _wait_for(cache, kind, key, generation, found.get(mark) if mark else None)
        if waited is not None:
            state = "hit" if waited.generation >= generation else "stale"
            count_answer(kind, state)
            return Lookup(state, waited.body, waited.etag)
        return _computed(kind, compute, store_as=(key, generation, started))
    try:
        return _computed(kind, compute, store_as=(key, generation, started))
    finally:
        _unlock(kind, lock)


def servable(entry: Entry | None, generation: int, mark: int | None, now: float) -> Entry | None:
    """``entry`` if the freshness contract lets it be served under the counter ``generation``
    to a reader whose read-your-writes mark is ``mark`` (None: no mark), else None."""
    if entry is None:
        return None
    if mark is not None and entry.generation < mark:
        return None  # computed before this reader's own write
    behind = generation - entry.generation
    if behind and (now - entry.computed_at >= settings.CACHE_PUBLIC_LAG_SECONDS or behind >= HARD_STEP):
        return None  # it may hide a write older than the contract allows, or was hard-invalidated
    return entry


def answer_as_is(entry: Entry | None, generation: int, now: float, *, refreshing: bool = False) -> str | None:
    """How a servable entry is answered without a refresh: "hit" (current and fresh) or
    "stale" (behind, but younger than CACHE_COALESCE_SECONDS, so writes coalesce meanwhile; or
    due for a refresh that another request, ``refreshing`` holding the recompute lock, runs, as
    :func:`fetch` answers when it cannot take the lock); None when it needs the recompute lock
    (or there is no entry)."""
    if entry is None:
        return None
    if entry.generation == generation and entry.fresh_until > now:
        return "hit"
    if refreshing or (
        entry.generation != generation and now - entry.computed_at < settings.CACHE_COALESCE_SECONDS
    ):
        return "stale"
    return None


def count_answer(kind: CachedKind, state: str) -> None:
    """Count an answer from Redis ("hit" or "stale") in the kind's cache metrics."""
    metrics.child(metrics.CACHE_HITS if state == "hit" else metrics.CACHE_STALE, kind.name).inc()


def _unlock(kind: CachedKind, lock) -> None:
    # LockError: it expired meanwhile, and its timeout already freed it.
    with contextlib.suppress(_Unavailable, LockError):
        _redis("unlock", kind.name, lock.release)


def _refresher(
    kind: CachedKind,
    compute: Callable[[], Any],
    key: str,
    scope: str,
    generation: int,
    started: float,
    lock,
):
    """The recompute of a stale entry, run by the lock holder after its response is sent."""

    done = False

    def refresh() -> None:
        nonlocal done
        if done:  # run at most once (a caller may run it before the response's close() does)
            return
        done = True
        try:
            # The counter as it is now (writes may have moved it since the stale read): the
            # refreshed entry is current, and a reader waiting for this key can take it.
            started_now = time.time()
            current = _redis("refresh", kind.name, lambda: _cache().get(scope))
            fresh = (generation, started) if current is None else (int(current), started_now)
            _computed(kind, compute, store_as=(key, *fresh), counted=False)
            metrics.CACHE_REFRESHES.labels(kind.name, "stored").inc()
        except (Http404, NotFound):  # the row is gone: its page must go too
            metrics.CACHE_REFRESHES.labels(kind.name, "gone").inc()
            with contextlib.suppress(_Unavailable):
                _redis("drop", kind.name, lambda: _cache().delete(key))
        except _Unavailable:  # Redis failed (counted): nothing to store into
            metrics.CACHE_REFRESHES.labels(kind.name, "failed").inc()
        except Exception:  # a database error or timeout: the entry ages out within the lag
            metrics.CACHE_REFRESHES.labels(kind.name, "failed").inc()
            logger.warning("refreshing %s failed; the stale entry is kept", kind.name, exc_info=True)
        finally:
            _unlock(kind, lock)

    return refresh


def _wait_for(cache, kind: CachedKind, key: str, generation: int, mark: int | None) -> Entry | None:
    """Poll for the entry another request is computing, up to CACHE_LOCK_WAIT_SECONDS: any fresh
    entry this reader may be served. One computed under the counter this reader read (or a later
    one) always; one under an earlier counter as the freshness contract allows (within the lag,
    never behind the reader's own mark). Writes keep moving the counter while the lock holder
    computes, so waiting for exactly this reader's value made it wait out the whole
    CACHE_LOCK_WAIT_SECONDS under steady writes and then query PostgreSQL after all."""
    deadline = time.monotonic() + settings.CACHE_LOCK_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(_WAIT_STEP)
        try:
            entry = _redis("wait", kind.name, lambda: cache.get(key))
        except _Unavailable:
            return None
        now = time.time()
        if entry is None or entry.fresh_until <= now or (mark is not None and entry.generation < mark):
            continue
        if entry.generation >= generation or servable(entry, generation, mark, now) is not None:
            return entry
    return None


def _computed(
    kind: CachedKind,
    compute: Callable[[], Any],
    *,
    store_as: tuple[str, int, float] | None = None,
    counted: bool = True,
) -> Lookup:
    """Compute from PostgreSQL (a miss, also when the cache is off or down); with ``store_as``
    (key, generation, started) store the result. A refresh after a stale answer is not a
    second response, so it is not ``counted`` as a miss. A result to be stored under the
    generation just read is computed on a replica only if that replica has replayed every write
    that moved the generation (core.db.replicas.before_cached_compute)."""
    if store_as is not None:
        replicas.before_cached_compute()
    body = render(compute())
    etag = etag_for(body)
    if counted:
        metrics.CACHE_MISSES.labels(kind.name).inc()
    if store_as is not None:
        _store(kind, *store_as, body, etag)
    return Lookup("miss", body, etag)


def _store(kind: CachedKind, key: str, generation: int, started: float, body: bytes, etag: str) -> None:
    """Keep ``body`` as ``kind``'s entry at ``key``; a Redis failure is counted and skipped."""
    entry = Entry(generation, time.time() + kind.ttl, etag, body, started)
    cache = _cache()
    with contextlib.suppress(_Unavailable):
        _redis(
            "write", kind.name, lambda: cache.set(key, entry, timeout=kind.ttl + settings.CACHE_STALE_SECONDS)
        )


def write_through(kind: CachedKind, parts: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, also stored as ``kind``'s entry for ``parts``: for a write that answers with
    the very payload a read would cache (a created or edited bounty's detail), so the first read
    after it is a hit. Called after the write committed; like a read, it takes the generation
    before computing, so a write committing meanwhile leaves this entry behind. Redis failures
    are counted and skipped. Inside a transaction (an idempotent handler's) nothing is stored:
    the write could still roll back, and the entry would then show what never happened."""
    if kind.ttl <= 0 or transaction.get_connection().in_atomic_block:
        return compute()
    cache = _cache()
    key, scope = kind.key(*parts), kind.scope(*parts)
    started = time.time()
    try:
        found = _redis("read", kind.name, lambda: cache.get_many([scope]))
        generation = _current_generation(scope, found.get(scope))
    except _Unavailable:
        return compute()
    data = compute()
    body = render(data)
    _store(kind, key, generation, started, body, etag_for(body))
    return data


def cached_response(
    request: HttpRequest,
    kind: CachedKind,
    parts: tuple,
    compute: Callable[[], Any],
) -> HttpResponse:
    """A JSON response for ``kind`` and ``parts`` with ETag, X-Cache and 304 handling; a stale
    entry this request must refresh is refreshed once the response is sent."""
    user = getattr(request, "user", None)
    reader_id = user.pk if user is not None and user.is_authenticated else None
    found = fetch(kind, parts, compute, reader_id=reader_id)
    response = respond(request, found.body, found.etag, found.state)
    if found.refresh is not None:
        # The WSGI server calls close() after the last byte; Django runs these closers before
        # request_finished returns the database connection to the pool.
        response._resource_closers.append(found.refresh)
        response.refresh_cache = found.refresh  # for callers that never close it (warm_cache)
    return response


def uncached_response(request: HttpRequest, data: Any) -> HttpResponse:
    """The same headers (ETag, 304, caching) for a payload that is deliberately not cached."""
    body = render(data)
    return respond(request, body, etag_for(body), "miss")


def request_parts(request) -> tuple:
    """A list request's identity: scheme and host (page links are absolute URLs) and the
    query parameters, sorted, so ``?a=1&b=2`` and ``?b=2&a=1`` share an entry."""
    params = tuple(sorted((name, tuple(sorted(values))) for name, values in request.GET.lists()))
    return (request.scheme, request.get_host(), params)


# --- invalidation ---------------------------------------------------------------------------


# Invalidations that failed (Redis unreachable at commit time), retried by this process before
# it next reads the cache: a blip must not leave an entry the write should have invalidated.
_missed_bumps: set[str] = set()
_missed_lock = threading.Lock()


# One round trip for a write's invalidation (a post moves three counters, its detail's, the list
# family's and its owner's stats', and marks each for its authors): KEYS are the ARGV[4]
# counters, then for each counter in turn its ARGV[5] authors' marks. A counter that exists
# moves by ARGV[1]; a missing one starts at ARGV[2] (nothing can be cached under it), kept
# ARGV[3] seconds. Each mark holds its counter's new value for ARGV[6] seconds. Values are
# copied as Redis strings (GET), never through Lua's numbers, which would print a 16-digit
# generation in exponent form.
_BUMP_SCRIPT = """
local counters, authors = tonumber(ARGV[4]), tonumber(ARGV[5])
local moved = {}
for i = 1, counters do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        redis.call('INCRBY', KEYS[i], ARGV[1])
    else
        redis.call('SET', KEYS[i], ARGV[2], 'EX', ARGV[3])
    end
    moved[i] = redis.call('GET', KEYS[i])
    for j = 1, authors do
        redis.call('SET', KEYS[counters + (i - 1) * authors + j], moved[i], 'EX', ARGV[6])
    end
end
return moved
"""
_bump_script: Any = None


def bump(scopes: Iterable[str], authors: Iterable[int] = (), *, hard: bool = False) -> set[str]:
    """Move the given generation counters on now (use :func:`invalidate_on_commit` in code that
    writes inside a transaction) and mark them as written by ``authors`` (read-your-writes:
    each author's mark holds the counter's new value while the lag lasts), in one Redis round
    trip. A ``hard`` bump makes every earlier entry unservable at once, public lag or not.
    Always tries Redis, even while reads skip it; counters it could not move are kept and
    retried before this process reads the cache again. Returns the counters it moved."""
    scopes = sorted(set(scopes))
    if not scopes:
        return set()
    lag = settings.CACHE_PUBLIC_LAG_SECONDS
    marked = sorted(set(authors)) if lag > 0 else []
    cache = _cache()
    keys = [cache.make_key(scope) for scope in scopes]
    keys += [cache.make_key(mark_key(author, scope)) for scope in scopes for author in marked]
    # Whole seconds, rounded up, plus one: a mark must outlive every entry it overrides.
    args = [
        HARD_STEP if hard else 1,
        _new_generation(),
        GENERATION_TTL,
        len(scopes),
        len(marked),
        int(lag) + 2,
    ]
    try:
        _redis("bump", _prefix_of(scopes[0]), lambda: _bump()(keys=keys, args=args), skip_when_down=False)
    except _Unavailable:
        with _missed_lock:
            _missed_bumps.update(scopes)
        logger.warning("%d cache invalidations kept for retry", len(scopes))
        return set()
    return set(scopes)


def _bump():
    """The bump script, registered with the response cache's Redis client (redis-py sends
    EVALSHA, and the script's text once if Redis does not know it yet); again for another
    client (tests change CACHES)."""
    global _bump_script
    client = get_redis_connection(CACHE_ALIAS)
    if _bump_script is None or _bump_script.registered_client is not client:
        _bump_script = client.register_script(_BUMP_SCRIPT)
    return _bump_script


def _request_author() -> int | None:
    """The signed-in user of the request being served (its write's author), if any."""
    request = get_current_request()
    user = getattr(request, "user", None) if request is not None else None
    return user.pk if user is not None and user.is_authenticated else None


def _retry_missed_bumps() -> None:
    """Before serving from the cache again, apply the invalidations Redis missed; raises
    _Unavailable (and keeps them) while it still fails."""
    with _missed_lock:
        missed = sorted(_missed_bumps)
    # Kept in the set until moved: another thread must not see it empty and read the counters
    # before they are bumped.
    moved = bump(missed)
    with _missed_lock:
        _missed_bumps.difference_update(moved)
        if _missed_bumps:
            raise _Unavailable


def invalidate_on_commit(
    kinds_and_parts: Iterable[tuple[CachedKind, tuple]], authors: Iterable[int | None] = ()
) -> None:
    """Invalidate these entries (or their whole families) once the current transaction commits;
    at once when no transaction is open. A rolled-back write invalidates nothing. ``authors``
    (the people the row belongs to) and the request's signed-in user read their write at once."""
    scopes = sorted({kind.scope(*parts) for kind, parts in kinds_and_parts})
    known = {author for author in authors if author is not None}

    def on_commit() -> None:
        author = _request_author()
        bump(scopes, known | ({author} if author is not None else set()))

    transaction.on_commit(on_commit, robust=True)


def clear_all() -> int:
    """Drop every cached response and counter (after data is loaded behind the ORM's back)."""
    cache = _cache()
    removed = 0
    for pattern in ("resp:*", "gen:*"):
        removed += cache.delete_pattern(pattern) or 0
    return removed

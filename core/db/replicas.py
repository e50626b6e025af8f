"""Reads on PostgreSQL streaming replicas; writes, and every read that must see them, on the primary.

With ``DATABASE_REPLICA_URLS`` set, settings define one alias per replica (``replica_1`` ...)
and install :class:`PrimaryReplicaRouter`. A read goes to a replica only when all of these hold:

- it happens inside a safe-method (GET, HEAD, OPTIONS) request outside the admin, handled by
  :class:`ReplicaMiddleware` (management commands, migrations, cron jobs: primary);
- its model's app is not one of ``PRIMARY_APPS`` (the wallet's ledger, the perf admin's own
  tables, users, tokens and sessions: reads that authenticate or move money);
- the primary connection of the thread is not inside a transaction (``atomic``), and the
  query is not ``select_for_update`` (Django routes those as writes);
- the request's user has not written within ``DATABASE_READ_YOUR_WRITES_SECONDS``: every
  successful unsafe request of a signed-in user sets a key in Redis, read by every worker
  and instance (read-your-writes);
- a replica is usable: it answered its last lag check within
  ``DATABASE_REPLICA_MAX_LAG_SECONDS`` of the primary and has not failed in the last
  ``DATABASE_REPLICA_RETRY_SECONDS``.

A request keeps the replica it started on, so all its reads come from one server. A page
about to be cached is computed on the replica only once the replica has replayed the primary's
WAL up to the moment the page's cache generation was read (``before_cached_compute``), so the
response cache's freshness contract holds with replicas too. A replica that fails in the
middle of a request (connection lost, a query cancelled by a recovery conflict) is marked
failed and the request is run again on the primary, once: it is a safe method, so running it
twice changes nothing. Each read sent to the primary instead of a replica counts in
``db_replica_fallbacks_total`` by reason; ``/readyz`` lists each replica's state without
failing on it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import Error as DjangoDatabaseError
from django.utils.functional import SimpleLazyObject, empty
from django_redis import get_redis_connection

from core.cache_keys import make_key
from core.metrics import DB_REPLICA_FALLBACKS

logger = logging.getLogger("bountyexpo.db")

REPLICA_PREFIX = "replica_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reads that authenticate, move money or serve the staff's own pages: always on the primary.
PRIMARY_APPS = frozenset({"wallet", "accounts", "auth", "sessions", "admin", "contenttypes", "perf", "core"})
LAG_SQL = """
SELECT pg_is_in_recovery() AS standby,
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END AS lag
"""
WRITER_KEY_PREFIX = "rw"


def replica_aliases() -> list[str]:
    return [alias for alias in settings.DATABASES if alias.startswith(REPLICA_PREFIX)]


# --- Each replica's state, per process ----------------------------------------------------


@dataclass
class ReplicaState:
    alias: str
    usable: bool = True
    reason: str = "not checked yet"
    lag_seconds: float | None = None
    checked_at: float = 0.0
    failed_until: float = 0.0
    checking: threading.Lock = field(default_factory=threading.Lock)


_states: dict[str, ReplicaState] = {}
_states_lock = threading.Lock()


def state(alias: str) -> ReplicaState:
    with _states_lock:
        return _states.setdefault(alias, ReplicaState(alias))


def reset() -> None:
    """Forget every replica's state (tests)."""
    with _states_lock:
        _states.clear()


def mark_failed(alias: str, reason: str) -> None:
    """The replica failed a connection or a query: leave it for DATABASE_REPLICA_RETRY_SECONDS."""
    replica = state(alias)
    if replica.usable:
        retry = settings.DATABASE_REPLICA_RETRY_SECONDS
        logger.warning("replica %s skipped for %.0f s: %s", alias, retry, reason)
    replica.usable = False
    replica.reason = f"failed: {reason}"
    replica.failed_until = time.monotonic() + settings.DATABASE_REPLICA_RETRY_SECONDS
    replica.checked_at = 0.0


def check(alias: str) -> ReplicaState:
    """The replica's state, measured again when the last measure is older than
    DATABASE_REPLICA_CHECK_SECONDS (by one thread; the others use the last measure)."""
    replica = state(alias)
    now = time.monotonic()
    if now < replica.failed_until or now - replica.checked_at < settings.DATABASE_REPLICA_CHECK_SECONDS:
        return replica
    if not replica.checking.acquire(blocking=False):
        return replica
    try:
        try:
            standby, lag = _measure(alias)
        except psycopg.Error as exc:
            mark_failed(alias, f"{type(exc).__name__}: {str(exc).strip()[:200]}")
            return replica
        was_failed = replica.reason.startswith("failed")
        replica.checked_at = time.monotonic()
        replica.lag_seconds = float(lag) if lag is not None else None
        if not standby:
            replica.usable, replica.reason = False, "not a standby (pg_is_in_recovery() is false)"
        elif replica.lag_seconds is None:
            replica.usable, replica.reason = False, "lag unknown (nothing replayed yet)"
        elif replica.lag_seconds > settings.DATABASE_REPLICA_MAX_LAG_SECONDS:
            replica.usable = False
            replica.reason = (
                f"lagging {replica.lag_seconds:.1f} s (over DATABASE_REPLICA_MAX_LAG_SECONDS "
                f"{settings.DATABASE_REPLICA_MAX_LAG_SECONDS:g})"
            )
        else:
            if not replica.usable:
                logger.warning("replica %s in use again (lag %.1f s)", alias, replica.lag_seconds)
            if was_failed:
                _drop_dead_connections(alias)
            replica.usable, replica.reason = True, f"lag {replica.lag_seconds:.1f} s"
        return replica
    finally:
        replica.checking.release()


def _measure(alias: str) -> tuple[bool, float | None]:
    """(is a standby, seconds behind) on a direct connection that gives up connecting after
    DATABASE_PROBE_TIMEOUT: a replica that is down costs the checking request that long, not
    the pool's whole timeout."""
    params = connections[alias].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    params.update(connect_timeout=settings.DATABASE_PROBE_TIMEOUT, autocommit=True)
    with psycopg.connect(**params) as conn:
        return conn.execute(LAG_SQL).fetchone()


def _drop_dead_connections(alias: str) -> None:
    """The replica is back: its pool's idle connections may date from before it went away."""
    pool = getattr(connections[alias], "pool", None)
    if pool is not None and not pool.closed:
        try:
            pool.check()
        except psycopg.Error as exc:
            logger.warning("replica %s pool check failed: %s", alias, exc)


def pool_gave_up(pool) -> None:
    """psycopg_pool's ``reconnect_failed`` for a replica's pool (the primary's guard is
    core.db.availability, and must not hear of a replica's outage)."""
    mark_failed(pool.name, "its pool could not reconnect")


# --- Read-your-writes -----------------------------------------------------------------------


def _user_id(request) -> int | None:
    """The request's user id once authenticated (DRF sets ``request.user`` on the Django
    request); None for anonymous users or a session user not loaded yet (never loaded here)."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = user._wrapped
        if user is empty:
            return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


def _writer_key(user_id: int) -> str:
    # Raw Redis commands bypass the cache API, so add its prefix and version by hand.
    return cache.make_key(make_key(WRITER_KEY_PREFIX, user_id))


def remember_writer(request) -> None:
    """A signed-in user's write succeeded: their reads stay on the primary for the window."""
    user_id = _user_id(request)
    window = settings.DATABASE_READ_YOUR_WRITES_SECONDS
    if user_id is None or window <= 0:
        return
    try:
        get_redis_connection("default").set(_writer_key(user_id), 1, px=int(window * 1000))
    except Exception as exc:  # Redis down: the next reads may lag by up to the replica's lag
        logger.warning("read-your-writes mark for user %s not stored: %s", user_id, exc)


def wrote_recently(user_id: int) -> bool:
    try:
        return bool(get_redis_connection("default").exists(_writer_key(user_id)))
    except Exception:  # Redis down: cannot tell, so the primary answers
        return True


# --- Routing --------------------------------------------------------------------------------


@dataclass
class Scope:
    """One safe-method request that may read from a replica."""

    request: object
    force_primary: bool = False
    alias: str | None = None
    used_replica: str | None = None
    failed: bool = False

    def read_alias(self) -> str:
        if self.force_primary or connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS
        if self.alias is None:
            self.alias = self._choose()
        if self.alias != DEFAULT_DB_ALIAS:
            self.used_replica = self.alias
        return self.alias

    def _choose(self) -> str:
        user_id = _user_id(self.request)
        if user_id is not None and wrote_recently(user_id):
            DB_REPLICA_FALLBACKS.labels(reason="read_your_writes").inc()
            return DEFAULT_DB_ALIAS
        candidates = replica_aliases()
        random.shuffle(candidates)
        reasons = []
        for alias in candidates:
            replica = check(alias)
            if replica.usable:
                return alias
            reasons.append("failed" if replica.reason.startswith("failed") else "lagging")
        DB_REPLICA_FALLBACKS.labels(reason="failed" if "failed" in reasons else "lagging").inc()
        return DEFAULT_DB_ALIAS


_scope: ContextVar[Scope | None] = ContextVar("replica_scope", default=None)


def before_cached_compute() -> None:
    """A page about to be cached under the generation just read must hold every write that
    moved that generation, or it would be served as current while missing one. A lagging
    replica's page would: so the request reads from its replica only if the replica has
    replayed up to the primary's WAL position of this moment (every such write committed
    before the generation was read, hence before this position); otherwise from the primary.
    Costs a round trip to each (and up to DATABASE_REPLICA_CATCH_UP_MS of waiting), on cache
    misses only."""
    scope = _scope.get()
    if scope is None or scope.force_primary:
        return
    alias = scope.read_alias()
    if alias == DEFAULT_DB_ALIAS:
        return
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            # The insert position: with synchronous_commit off, a committed write's record may
            # not be written out yet (pg_current_wal_lsn is the write position).
            cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
            (position,) = cursor.fetchone()
        # Any write anywhere on the cluster moves that position: a streaming replica is
        # usually a few milliseconds behind it, so it gets DATABASE_REPLICA_CATCH_UP_MS to
        # replay that far before the primary computes the page instead.
        deadline = time.monotonic() + settings.DATABASE_REPLICA_CATCH_UP_MS / 1000
        with connections[alias].cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [position])
                (caught_up,) = cursor.fetchone()
                if caught_up or time.monotonic() >= deadline:
                    break
                time.sleep(0.002)
    except (DjangoDatabaseError, psycopg.Error):
        caught_up = False  # a failed replica is marked by its guard; the primary answers
    if not caught_up:
        DB_REPLICA_FALLBACKS.labels(reason="behind_cache").inc()
        scope.alias, scope.used_replica = DEFAULT_DB_ALIAS, None


class PrimaryReplicaRouter:
    """Writes, migrations and primary-only reads on ``default``; the others as the request's
    :class:`Scope` decides."""

    def db_for_read(self, model, **hints):
        scope = _scope.get()
        if scope is None or model._meta.app_label in PRIMARY_APPS:
            return DEFAULT_DB_ALIAS
        return scope.read_alias()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the replicas hold the primary's rows

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


def replica_failed(alias: str, exc: BaseException) -> None:
    """A query or checkout on a replica failed: skip it, and have the request run again."""
    mark_failed(alias, f"{type(exc).__name__}: {str(exc).strip()[:200]}")
    scope = _scope.get()
    if scope is not None and scope.used_replica == alias:  # not a failed lag check: nothing read there
        scope.failed = True


class ReplicaMiddleware:
    """Opens a :class:`Scope` for safe-method requests outside the admin; remembers signed-in
    writers after a successful unsafe request; runs a request again on the primary when its
    replica failed under it."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.admin_prefix = "/admin/"

    def __call__(self, request):
        if request.method not in SAFE_METHODS:
            response = self.get_response(request)
            if response.status_code < 400:
                remember_writer(request)
            return response
        if request.path.startswith(self.admin_prefix):
            return self.get_response(request)
        scope = Scope(request)
        token = _scope.set(scope)
        try:
            response = self.get_response(request)
            if scope.failed and scope.used_replica:
                DB_REPLICA_FALLBACKS.labels(reason="retried").inc()
                logger.warning("%s %s ran again on the primary", request.method, request.path)
                for alias in replica_aliases():
                    connections[alias].close()
                scope.force_primary, scope.failed = True, False
                response = self.get_response(request)
            return response
        finally:
            _scope.reset(token)


def readiness() -> dict[str, str]:
    """Each replica's state for /readyz (measured now if the last measure is stale)."""
    answers = {}
    for alias in replica_aliases():
        replica = check(alias)
        answers[alias] = ("ok, " if replica.usable else "skipped, ") + replica.reason
    return answers


def failed_in_this_request() -> bool:
    """A replica failed under the current request (its error is the replica's, not the primary's)."""
    scope = _scope.get()
    return scope is not None and scope.failed

"""Fast, honest answers while PostgreSQL is unreachable, and service back soon after it is.

Left alone, psycopg's pool makes an outage slow twice over: each request waits the pool's
whole timeout (``DATABASE_CONNECT_TIMEOUT``, 5 s) before failing, and the pool retries its
connections with exponential backoff (1, 2, 4, 8 ... s), so it can come back many seconds
after PostgreSQL did. Here, per process:

- **up**: requests check connections out of the pool as usual (a pool not opened yet is
  checked first, as when suspect).
- **suspect**: something looked like a lost database (the pool gave up reconnecting, a
  checkout failed, a query lost its connection: then the pool is drained too, since its other
  idle connections date from before the loss). The next request probes PostgreSQL with one
  direct connection (``DATABASE_PROBE_TIMEOUT``): it answers, **up**; it does not, **down**.
- **down**: requests fail at once with :class:`DatabaseUnavailable` (503
  ``database_unavailable`` with ``Retry-After``, see core.errors) without waiting on the pool.
  Every ``DATABASE_RETRY_SECONDS`` one request probes; the first probe that connects sets
  **up**, and the next checkout makes the pool grow at once. The pool is told to give up its
  own retries immediately (``reconnect_timeout=0`` in settings), so no backoff delay of its
  own stands between PostgreSQL's return and full service.

A probe runs in a request thread, one at a time per process; the others do not wait for it.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger("bountyexpo.db")

UP, SUSPECT, DOWN = "up", "suspect", "down"
# Exceptions of a checkout that may mean PostgreSQL is gone: connect failures, PoolTimeout,
# TooManyRequests, PoolClosed are all psycopg OperationalErrors.
CHECKOUT_FAILURES = (psycopg.OperationalError,)


class DatabaseUnavailable(psycopg.OperationalError):
    """PostgreSQL did not answer the last probe; raised without touching the pool."""


class _Guard:
    def __init__(self) -> None:
        self.state = UP
        self.next_probe = 0.0
        self.down_since: float | None = None
        self.probing = threading.Lock()

    def mark(self, state: str) -> None:
        if state == self.state:
            return
        if state == DOWN:
            self.down_since = time.monotonic()
            logger.error("PostgreSQL unreachable: answering 503 until a probe connects")
        elif state == UP and self.state == DOWN:
            logger.warning("PostgreSQL answers again after %.1f s", time.monotonic() - (self.down_since or 0))
            self.down_since = None
        elif state == UP:
            logger.info("PostgreSQL probe answered: the failure seen was not an outage")
        self.state = state


_guard = _Guard()


def state() -> str:
    return _guard.state


def reset() -> None:
    """Forget any earlier failure in this process (tests)."""
    _guard.mark(UP)
    _guard.next_probe = 0.0


def suspect() -> None:
    """Something looked like a lost database: the next request checks, even if a probe ran
    moments ago (new evidence)."""
    if _guard.state == UP:
        _guard.mark(SUSPECT)
        _guard.next_probe = 0.0


def connection_lost() -> None:
    """A query lost its connection (PostgreSQL restarted, or the network dropped it): every
    idle connection of this process's pool is from before that moment and most likely dead
    too. Drain them all, so that once PostgreSQL answers no request meets a dead one (each
    would be one more 503), and check whether PostgreSQL is gone."""
    pool = connections[DEFAULT_DB_ALIAS].pool
    if pool is not None and not pool.closed:
        pool.drain()  # idle ones closed now, checked-out ones when returned; replaced either way
    suspect()


def pool_gave_up(pool) -> None:
    """psycopg_pool's ``reconnect_failed`` callback: a connection attempt failed for good."""
    suspect()


def checkout_failed() -> None:
    suspect()


def _probe(wrapper) -> bool:
    params = {**wrapper.get_connection_params(), "connect_timeout": settings.DATABASE_PROBE_TIMEOUT}
    try:
        psycopg.connect(**params).close()
    except psycopg.Error as exc:
        logger.info("PostgreSQL probe failed: %s", exc)
        return False
    return True


def before_checkout(wrapper) -> None:
    """Called before each pool checkout: raises DatabaseUnavailable at once while down,
    and lets one request per interval probe while down or suspect, or before the pool's first
    checkout (it opens then): opening a pool with PostgreSQL gone would wait out its timeout.
    (A pool that gives up its connections later says so through pool_gave_up.)"""
    guard = _guard
    if guard.state == UP and not wrapper.pool.closed:
        return
    now = time.monotonic()
    if now >= guard.next_probe and guard.probing.acquire(blocking=False):
        try:
            guard.next_probe = now + settings.DATABASE_RETRY_SECONDS
            answered = _probe(wrapper)
        finally:
            guard.probing.release()
        guard.mark(UP if answered else DOWN)
    if guard.state == DOWN:
        raise DatabaseUnavailable("PostgreSQL is unreachable; retrying.")

"""The Redis cache of bearer tokens' owners, and how an entry is ended at once.

An authenticated request is answered without a database query while its token's owner is in
Redis (``AUTH_TOKEN_CACHE_SECONDS``). Whatever decides access (the token row, the user's
``is_active``, password, username, staff flags) can change by any path: the API, the admin,
the ORM, a management command. ``accounts.revocation`` catches those paths and calls
:func:`evict_on_commit`; this module makes the eviction hold against two races:

- *A reader that looked the token up just before the change commits* would store the old
  answer after the eviction. So an eviction does not delete the entry: it overwrites it with a
  short-lived tombstone, and readers store entries only with ``add`` (Redis ``SET NX``), which
  a tombstone blocks. A tombstoned token is checked in PostgreSQL on every request until the
  tombstone expires (``TOMBSTONE_SECONDS``, longer than any request may run).
- *Redis unreachable when the change commits*: the eviction is kept and retried by this
  process before it reads any cached token again; until it succeeds this process asks
  PostgreSQL. (Other processes read the same Redis, which is unreachable for them too, or
  restarted empty; only a partition that hid Redis from this process alone leaves an entry
  to its TTL.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django_redis.exceptions import ConnectionInterrupted

from core.cache_keys import make_key

logger = logging.getLogger("bountyexpo.auth")

# Longer than a request can live (gunicorn's timeout is 30 s), so a reader that queried
# PostgreSQL before a change committed cannot outlast the tombstone and store stale access.
TOMBSTONE_SECONDS = 120
_TOMBSTONE = "revoked"

_missed: set[str] = set()
_missed_lock = threading.Lock()


def token_cache_key(key_hash: str) -> str:
    return make_key("auth-token", key_hash)


def cached_owner(key_hash: str) -> dict[str, Any] | None:
    """The cached ``{"expires_at", "user"}`` entry, or None (absent, tombstoned, Redis down,
    or an eviction of this process still pending)."""
    if _missed and not _retry_missed():
        return None
    entry = cache.get(token_cache_key(key_hash))
    return entry if isinstance(entry, dict) else None


def evictions_pending() -> bool:
    """True while an eviction Redis missed waits for retry: cached entries are not to be trusted."""
    return bool(_missed)


def remember_owner(key_hash: str, entry: dict[str, Any], ttl: int) -> None:
    """Store a looked-up owner unless an eviction got there first (SET NX against the tombstone)."""
    if ttl > 0 and not _missed:
        cache.add(token_cache_key(key_hash), entry, timeout=ttl)


def evict(key_hashes: Iterable[str]) -> None:
    """End the cached entries of these tokens now; kept for retry when Redis is unreachable."""
    key_hashes = set(key_hashes)
    if not key_hashes:
        return
    try:
        # The client under the cache API: it raises instead of ignoring the failure.
        cache.client.set_many(
            {token_cache_key(key_hash): _TOMBSTONE for key_hash in key_hashes}, timeout=TOMBSTONE_SECONDS
        )
    except ConnectionInterrupted:
        with _missed_lock:
            _missed.update(key_hashes)
        logger.error("Redis missed %d token evictions; this process retries before trusting the cache",
                     len(key_hashes))  # fmt: skip


def evict_on_commit(key_hashes: Iterable[str]) -> None:
    """Evict once the current transaction commits (at once outside one); a rollback evicts
    nothing, and nothing needed evicting."""
    key_hashes = sorted(set(key_hashes))
    if key_hashes:
        transaction.on_commit(lambda: evict(key_hashes), robust=True)


def _retry_missed() -> bool:
    with _missed_lock:
        pending = set(_missed)
        _missed.clear()
    evict(pending)
    return not _missed

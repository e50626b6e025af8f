"""Logging helpers: every record carries the id of the request it was logged in."""

from __future__ import annotations

import logging
import time

from core.metrics import CACHE_ERRORS, PLAIN_ALIASES
from core.request_id import get_request_id


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to each record so both text and JSON formats can show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = get_request_id()
        return True


# psycopg_pool logs each checkout at INFO; under load that is several lines per request.
_PER_CHECKOUT_MESSAGES = ("connection requested from", "connection given by", "returning connection to")


class PoolEventFilter(logging.Filter):
    """Keeps the pool's lifecycle events (connect, grow, shrink, discard) and its warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not str(record.msg).startswith(_PER_CHECKOUT_MESSAGES)


class QuietCheckouts:
    """psycopg_pool's module logger, minus its per-checkout lines before they become records.

    PoolEventFilter drops those lines, but only once the logger has built a record for each
    (the caller's frame found, the record made): three per request that touches the database,
    1.5 % of a worker's CPU under the peak profile. This stands in for ``psycopg_pool.pool``'s
    module-level ``logger`` (install_quiet_checkouts) and passes everything else on, unchanged,
    with the caller psycopg_pool's own frame."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def info(self, msg, *args, **kwargs) -> None:
        if isinstance(msg, str) and msg.startswith(_PER_CHECKOUT_MESSAGES):
            return
        kwargs.setdefault("stacklevel", 2)
        self.logger.info(msg, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.logger, name)


def install_quiet_checkouts() -> None:
    """Swap psycopg_pool's module logger for QuietCheckouts (once; CoreConfig.ready)."""
    from psycopg_pool import pool

    if not isinstance(pool.logger, QuietCheckouts):
        pool.logger = QuietCheckouts(pool.logger)


class CacheErrorFilter(logging.Filter):
    """On the "bountyexpo.cache" logger: counts each Redis failure django-redis ignored (the
    aliases with IGNORE_EXCEPTIONS log "Exception ignored" with a traceback, django-prometheus's
    get() the error's text at ERROR) in
    ``cache_errors_total{cache_key_prefix="plain"}``, and lets through at most one such record every
    ``every`` seconds, so an outage does not write a traceback per request."""

    def __init__(self, every: float = 10.0):
        super().__init__()
        self.every = every
        self.last = float("-inf")
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        # django-redis logs "Exception ignored" (with the traceback); django-prometheus's get()
        # catches the failure itself and logs its text at ERROR. Both are one ignored failure.
        # The response cache's own WARNINGs pass through (it counts them itself).
        if record.getMessage() != "Exception ignored" and record.levelno < logging.ERROR:
            return True
        CACHE_ERRORS.labels(PLAIN_ALIASES).inc()
        now = time.monotonic()
        if now - self.last < self.every:
            self.suppressed += 1
            return False
        if self.suppressed:
            record.msg = f"{record.getMessage()} (and {self.suppressed} more since the last report)"
            record.args = ()
        self.last, self.suppressed = now, 0
        return True

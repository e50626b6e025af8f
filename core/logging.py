"""Logging helpers: every record carries the id of the request it was logged in."""

from __future__ import annotations

import logging

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

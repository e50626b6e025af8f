"""Maintenance commands run bulk SQL that the API's statement_timeout (10 s, every pooled
connection) would cancel: on a slow or busy machine ``seed_data`` failed with "canceling
statement due to statement timeout". They run under their own, longer bound instead."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection


@contextmanager
def maintenance_statement_timeout() -> Iterator[None]:
    """Statements of this thread's connection may run MAINTENANCE_STATEMENT_TIMEOUT_MS (0: no
    limit) inside the block; afterwards the connection's configured timeout applies again, so a
    connection going back to the pool never carries the longer one to a request."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, false)",
            [str(settings.MAINTENANCE_STATEMENT_TIMEOUT_MS)],
        )
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")  # back to the connection's -c option
        except DatabaseError:
            # The connection broke: the pool discards it, and its setting with it.
            connection.close()

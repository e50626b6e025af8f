"""Maintenance commands run bulk SQL that the API's statement_timeout (10 s, every pooled
connection) would cancel: on a slow or busy machine ``seed_data`` failed with "canceling
statement due to statement timeout". They run under their own, longer bound instead.

The longer bound is a ``SET LOCAL`` of one transaction, never a session setting: behind
PgBouncer in transaction mode the server session is handed to another client after each
transaction, and a session-level ``SET`` would follow it there (or be missing from the next
statement, which may run on another server connection)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction


@contextmanager
def maintenance_statement_timeout() -> Iterator[None]:
    """Run the block in one transaction (a savepoint inside an outer one) whose statements may
    run MAINTENANCE_STATEMENT_TIMEOUT_MS (0: no limit). On the way out the timeout in force
    before is back: at once when the transaction ends, explicitly when an outer one goes on."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('statement_timeout'), set_config('statement_timeout', %s, true)",
                [str(settings.MAINTENANCE_STATEMENT_TIMEOUT_MS)],
            )
            before = cursor.fetchone()[0]
        yield
        if not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])

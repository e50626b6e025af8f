"""The base of the commands that read or write the app's tables (seed_data, load_demo,
warm_cache, check_ledger, purge_idempotency_keys, perf_snapshot; loadtest checks after its options
and its server, as a load test against a server that is down should say that first).

On a database that is unreachable or not migrated yet they stop with one line that says what to
do, instead of a ProgrammingError traceback from their first query."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.migrations.executor import MigrationExecutor


def require_migrated_database(alias: str = DEFAULT_DB_ALIAS) -> None:
    """Raise CommandError unless the database is reachable and every migration is applied."""
    connection = connections[alias]
    db = connection.settings_dict
    where = f"{db['HOST']}:{db['PORT']}/{db['NAME']}"
    try:
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except OperationalError as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
        raise CommandError(
            f"cannot reach the database {where}: {reason}. Is PostgreSQL running (`make services` "
            "starts the local one) and DATABASE_URL right?"
        ) from None
    if unapplied:
        first = unapplied[0][0]
        raise CommandError(
            f"the database {where} has {len(unapplied)} unapplied migration(s) "
            f"(first: {first.app_label}.{first.name}): run `python manage.py migrate` first."
        )


class DatabaseCommand(BaseCommand):
    """A BaseCommand that checks the database (require_migrated_database) before ``handle``;
    ``--help`` and argument errors still work without one."""

    def execute(self, *args, **options):
        require_migrated_database()
        return super().execute(*args, **options)

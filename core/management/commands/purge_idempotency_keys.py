from __future__ import annotations

from datetime import timedelta

from django.core.management.base import CommandError

from core.db.maintenance import maintenance_statement_timeout
from core.idempotency import idempotency_records_purge
from core.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = "Delete stored Idempotency-Key responses older than the retention period (run daily)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-hours",
            type=int,
            default=24,
            help="Keep records younger than this many hours (default 24): a retry within it is replayed.",
        )

    def handle(self, *args, older_than_hours: int, **options) -> None:
        if older_than_hours < 1:
            raise CommandError("--older-than-hours must be at least 1.")
        with maintenance_statement_timeout():
            deleted = idempotency_records_purge(older_than=timedelta(hours=older_than_hours))
        self.stdout.write(f"deleted {deleted} idempotency record(s) older than {older_than_hours} h")

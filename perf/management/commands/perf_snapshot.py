"""Take one pg_stat_statements snapshot for the Queries page and prune the old ones.

Run it every 5 minutes (cron or a Kubernetes CronJob); see README, "Perf admin".
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from core.db.maintenance import maintenance_statement_timeout
from core.management.base import DatabaseCommand
from perf.monitor.db import monitor_connection
from perf.monitor.queries import MonitorError, megabytes, prune_snapshots, snapshot_storage, take_snapshot


class Command(DatabaseCommand):
    help = (
        "Store a pg_stat_statements snapshot of this database (the Queries page's windows are "
        "differences between snapshots), then prune: snapshots older than the retention go, those "
        "older than 2 hours are merged into one per hour."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--retention-days",
            type=int,
            default=None,
            help="Delete snapshots older than this many days (default: PERF_SNAPSHOT_RETENTION_DAYS, "
            f"{settings.PERF_SNAPSHOT_RETENTION_DAYS}).",
        )
        parser.add_argument(
            "--no-prune", action="store_true", help="Only take the snapshot; leave older ones as they are."
        )

    def handle(self, *args, retention_days: int | None, no_prune: bool, **options):
        retention_days = settings.PERF_SNAPSHOT_RETENTION_DAYS if retention_days is None else retention_days
        if retention_days < 1:
            raise CommandError("--retention-days must be at least 1.")
        with monitor_connection() as conn:
            # A job is not a page: its writes may outlast the API's statement timeout on a big
            # table. They commit at the block's end, before the monitor's session reads them.
            with maintenance_statement_timeout():
                try:
                    # wait: a page view taking one at this moment delays the job, never skips it.
                    taken = take_snapshot(conn, wait=True)
                except MonitorError as exc:
                    raise CommandError(f"{exc} Is PostgreSQL up, with pg_stat_statements preloaded?") from exc
                if not no_prune:
                    pruned = prune_snapshots(retention_days=retention_days, now=timezone.now())
            self.stdout.write(taken.describe())
            if not no_prune:
                self.stdout.write(pruned.describe(retention_days))
            kept = snapshot_storage(conn).first()
        if kept:
            self.stdout.write(
                f"Kept: {kept['snapshots']} snapshots since {kept['oldest']:%Y-%m-%d %H:%M}, "
                f"{megabytes(kept['bytes'])} with their statements."
            )

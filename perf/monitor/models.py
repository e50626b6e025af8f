"""The perf admin's pages, one unmanaged model each: no table, only a place in the admin (its
index lists them under "Perf", its URLs and permissions come with them). See pages.py."""

from __future__ import annotations

from django.db import models


class MonitorPage(models.Model):
    class Meta:
        abstract = True
        managed = False
        default_permissions = ("view",)

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


class Overview(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "overview"


class ConnectionPool(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "connection pool"


class QueryStats(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "queries"


class IndexUsage(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "indexes and space"


class LiveQuery(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "live queries"


class CacheStats(MonitorPage):
    class Meta(MonitorPage.Meta):
        verbose_name = verbose_name_plural = "cache"


# --- pg_stat_statements snapshots (the Queries page's windows) ---------------------------------
# pg_stat_statements only counts up from its last reset, so "the last hour" is a difference
# between two readings. Readings are stored as increments: each snapshot keeps, per statement,
# what it did since the previous snapshot, and only for statements that ran in between. A window
# is then a sum over the snapshots after its start, a reset inside a window costs at most the
# calls between the last snapshot before it and the reset, and the table grows with the
# statements that actually run, not with pg_stat_statements.max (10,000) per snapshot.


class Statement(models.Model):
    """One normalised statement of this database: its text, stored once, and its cumulative
    counters as of the newest snapshot (what the next snapshot's increments are measured from)."""

    queryid = models.BigIntegerField(primary_key=True)
    query = models.TextField()
    # The monitor's own reads and writes, left out of every window (decided once, from the text).
    monitor = models.BooleanField(default=False)
    calls = models.BigIntegerField(default=0)
    total_exec_time = models.FloatField(default=0.0, help_text="milliseconds")
    rows = models.BigIntegerField(default=0)
    shared_blks_hit = models.BigIntegerField(default=0)
    shared_blks_read = models.BigIntegerField(default=0)
    first_seen = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.queryid}: {self.query[:60]}"


class StatementSnapshot(models.Model):
    """One reading of pg_stat_statements for this database; its increments cover the time since
    the snapshot before it."""

    # 4-byte key: it is repeated in every increment row.
    id = models.AutoField(primary_key=True)
    taken_at = models.DateTimeField()
    # pg_stat_statements_info.stats_reset: a change means every counter restarted from zero.
    stats_reset = models.DateTimeField()
    # This database's own reset from the Queries page (pg_stat_statements_reset with its dbid),
    # which stats_reset does not record; carried forward by every later snapshot.
    database_reset_at = models.DateTimeField(null=True, blank=True)
    # pg_stat_statements_info.dealloc (cluster-wide): entries evicted to stay under .max.
    dealloc = models.BigIntegerField()
    statements = models.PositiveIntegerField(help_text="statements of this database in pg_stat_statements")

    class Meta:
        indexes = [
            # Queries page: the snapshot nearest a window's start; perf_snapshot: prune by age
            models.Index(fields=["taken_at"], name="statementsnapshot_taken_idx"),
        ]

    def __str__(self) -> str:
        return f"snapshot {self.pk} at {self.taken_at:%Y-%m-%d %H:%M:%S}"


class StatementDelta(models.Model):
    """What one statement did between a snapshot and the one before it (rows only when it ran)."""

    # Windows read a range of snapshots; the key serves that scan and no other index is needed.
    pk = models.CompositePrimaryKey("snapshot_id", "queryid")
    snapshot = models.ForeignKey(StatementSnapshot, on_delete=models.CASCADE, db_index=False)
    queryid = models.BigIntegerField()
    calls = models.BigIntegerField()
    total_exec_time = models.FloatField(help_text="milliseconds")
    rows = models.BigIntegerField()
    shared_blks_hit = models.BigIntegerField()
    shared_blks_read = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.queryid} in snapshot {self.snapshot_id}"

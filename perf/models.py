from __future__ import annotations

from django.db import models

# The monitor's pages (unmanaged models: a place in the admin, no table).
from perf.monitor.models import (  # noqa: F401
    CacheStats,
    ConnectionPool,
    IndexUsage,
    LiveQuery,
    Overview,
    QueryStats,
)


class LoadTestRun(models.Model):
    """One `manage.py loadtest` run: its configuration, verdict and everything it measured."""

    profile = models.CharField(max_length=40)
    host = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    max_users = models.PositiveIntegerField()
    duration_s = models.PositiveIntegerField()
    think_time = models.CharField(max_length=40)
    requests = models.PositiveBigIntegerField()
    p95_ms = models.FloatField()
    p99_ms = models.FloatField()
    error_rate = models.FloatField()
    rps = models.FloatField(help_text="steady-state requests per second (ramp-up excluded)")
    passed = models.BooleanField()
    # The whole result: checks, endpoints, history, resources, database, Redis, bottlenecks.
    data = models.JSONField()
    report_path = models.CharField(max_length=500, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        indexes = [
            # load-test history in the admin, newest first
            models.Index(fields=["-started_at"], name="loadtestrun_started_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.profile} {self.started_at:%Y-%m-%d %H:%M}"

"""Load-test runs in the admin (the monitor's pages are in perf/monitor/)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from perf.models import LoadTestRun


@admin.register(LoadTestRun)
class LoadTestRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "profile",
        "started_at",
        "max_users",
        "requests",
        "p95_ms",
        "p99_ms",
        "error_pct",
        "rps",
        "passed",
    )
    list_filter = ("profile", "passed")
    ordering = ("-started_at",)
    readonly_fields = [f.name for f in LoadTestRun._meta.fields if f.name != "notes"] + ["report"]
    exclude = ("data",)

    @admin.display(description="errors %")
    def error_pct(self, run: LoadTestRun) -> str:
        return f"{run.error_rate * 100:.2f}"

    @admin.display(description="report")
    def report(self, run: LoadTestRun) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", run.data.get("markdown", ""))

    def has_add_permission(self, request) -> bool:
        return False

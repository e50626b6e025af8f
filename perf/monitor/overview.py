"""The overview: every check of the monitor as one green / amber / red line with a link.

Each check says what it measured, how that compares with its thresholds (PERF_* settings),
and where to look next. The checks come from the pages that own the numbers (pool, cache,
queries, live queries, indexes); the few that belong to no page (connections against
``max_connections``, the server's version and uptime, the last ledger check) are read here.
A check that could not be measured (a timeout, Redis down, no data yet) is grey, never green.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from perf.monitor import cache, indexes, live, pool, queries
from perf.monitor.charts import nice
from perf.monitor.db import Section, fetch, monitor_connection
from perf.monitor.models import Overview
from perf.monitor.pages import Level, MonitorPageAdmin, level_for


@dataclass
class Check:
    name: str
    level: Level
    value: str
    explanation: str
    url: str = ""


def _page_url(model_name: str) -> str:
    model = apps.get_model("perf", model_name)
    return admin.site._registry[model].page_url()


def server_check(section: Section) -> Check:
    server = section.first()
    if not server:
        return Check("PostgreSQL", Level.UNKNOWN, "unknown", section.error or "No answer.")
    uptime = timesince(server["started"], now=server["now"])
    version = server["version"].split(",")[0]
    return Check("PostgreSQL", Level.OK, f"{version}, up {uptime}", "Server version and uptime.")


def connections_check(section: Section) -> Check:
    row = section.first()
    if not row:
        return Check("Connections", Level.UNKNOWN, "unknown", section.error or "No answer.")
    used, limit = row["used"], row["max_connections"]
    pct = 100 * used / limit
    warning, critical = settings.PERF_CONNECTIONS_WARNING_PCT, settings.PERF_CONNECTIONS_CRITICAL_PCT
    return Check(
        "Connections",
        level_for(pct, warning=warning, critical=critical),
        f"{used} of {limit} ({nice(pct)} %)",
        f"Client connections to PostgreSQL, every application's, against max_connections; amber at "
        f"{warning} %, red at {critical} %.",
        _page_url("connectionpool"),
    )


def ledger_check(section: Section) -> Check:
    """The newest recorded check_ledger run (the command or the admin action writes them)."""
    explanation = (
        "Every balance equals its ledger, and balances + fees + escrow = deposits - withdrawals; "
        f"amber when the last check is older than {settings.PERF_LEDGER_CHECK_MAX_AGE_HOURS} h."
    )
    if not section.ok:
        return Check("Ledger check", Level.UNKNOWN, "unknown", section.error or "")
    run = section.first()
    if not run:
        return Check("Ledger check", Level.WARNING, "never run", explanation + " Run manage.py check_ledger.")
    finished: datetime = run["finished_at"]
    age = timezone.now() - finished
    if not run["ok"]:
        level = Level.CRITICAL
        value = f"BROKEN: {run['mismatched_users']} user(s) differ, {timesince(finished)} ago"
    else:
        stale = age > timedelta(hours=settings.PERF_LEDGER_CHECK_MAX_AGE_HOURS)
        level = Level.WARNING if stale else Level.OK
        value = f"ok, {run['users_checked']} users, {timesince(finished)} ago"
    return Check("Ledger check", level, value, explanation)


def live_check() -> Check:
    found = live.long_running()
    threshold = nice(settings.PERF_LONG_QUERY_SECONDS)
    if found.count is None:
        value = "unknown"
    elif found.count:
        value = f"{found.count} running, the oldest for {nice(found.longest_seconds)} s"
    else:
        value = "none"
    return Check(
        "Long-running queries",
        found.level,
        value,
        found.error
        or f"Queries running (or transactions left open) longer than {threshold} s; red past the "
        "API's statement timeout, which no request of the API can reach.",
        _page_url("livequery"),
    )


def pool_check() -> Check:
    summary = pool.pool_summary()
    if summary.get("utilisation_pct") is None:
        value = "no worker has published" if not summary.get("error") else "unknown"
    else:
        value = (
            f"{summary['in_use']} of {summary['max']} connections in use "
            f"({nice(summary['utilisation_pct'])} %), {summary['waiting']} waiting, "
            f"{summary['workers']} worker(s)"
        )
    return Check(
        "Connection pool",
        summary["level"],
        value,
        summary.get("error")
        or f"The busiest worker's pool; amber at {settings.PERF_POOL_WARNING_PCT} %, red at "
        f"{settings.PERF_POOL_CRITICAL_PCT} % (SPEC section 1).",
        _page_url("connectionpool"),
    )


def cache_checks() -> list[Check]:
    summary = cache.cache_summary()
    url = _page_url("cachestats")
    hit = summary.get("hit_rate_pct")
    hit_check = Check(
        "Response cache hit rate",
        summary["level"],
        "no lookups yet" if hit is None else f"{nice(hit)} % of {summary.get('lookups', 0):,} lookups",
        f"Cached reads answered without PostgreSQL since the server started; amber under "
        f"{settings.PERF_CACHE_HIT_WARNING_PCT} %, red under {settings.PERF_CACHE_HIT_CRITICAL_PCT} %.",
        url,
    )
    if not summary.get("redis_ok"):
        memory = Check("Redis", Level.UNKNOWN, "unreachable", summary.get("redis_error") or "", url)
    else:
        memory = Check(
            "Redis",
            summary["memory_level"],
            f"{_mb(summary['used_memory'])} of {_mb(summary['max_memory'])} "
            f"({nice(summary['memory_pct'] or 0)} %), {summary['evictions']:,} evicted, "
            f"version {summary['version']}, up {_duration(summary['uptime_seconds'])}",
            f"Memory against maxmemory; amber at {settings.PERF_REDIS_MEMORY_WARNING_PCT} %, red at "
            f"{settings.PERF_REDIS_MEMORY_CRITICAL_PCT} %.",
            url,
        )
    return [hit_check, memory]


def slow_query_check() -> Check:
    found = queries.slow_statements(3600)
    if found.count is None:
        value = "unknown"
    else:
        value = f"{found.count} statement(s) with a mean over {settings.PERF_SLOW_QUERY_MS} ms"
    return Check(
        "Slow queries, last hour",
        found.level,
        value,
        found.error
        or "From pg_stat_statements snapshots; red when the slow ones take half the database's time.",
        _page_url("querystats"),
    )


def index_checks() -> list[Check]:
    found = indexes.index_problems()
    url = _page_url("indexusage")
    names = {
        "invalid": "Invalid indexes",
        "unused": "Unused indexes",
        "duplicate": "Duplicate indexes",
        "seq_scan_tables": "Tables read by sequential scans",
    }
    return [
        Check(title, found[key]["level"], _count(found[key]["count"]), found[key]["summary"], url)
        for key, title in names.items()
    ]


def gather(request: HttpRequest) -> list[Check]:
    """Every check, in the order operators read them: what hurts now, capacity, then health."""
    ledger_table = apps.get_model("wallet", "LedgerCheckRun")._meta.db_table
    with monitor_connection() as conn:
        server = fetch(
            conn,
            "SELECT version() AS version, pg_postmaster_start_time() AS started, now() AS now",
        )
        connections = fetch(
            conn,
            "SELECT count(*) AS used, current_setting('max_connections')::int AS max_connections "
            "FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
        ledger = fetch(
            conn,
            f"SELECT ok, users_checked, mismatched_users, finished_at FROM {ledger_table} "  # noqa: S608 (model metadata)
            "ORDER BY started_at DESC LIMIT 1",
        )
    return [
        live_check(),
        pool_check(),
        connections_check(connections),
        *cache_checks(),
        slow_query_check(),
        *index_checks(),
        ledger_check(ledger),
        server_check(server),
    ]


def _count(count: int | None) -> str:
    return "unknown" if count is None else f"{count:,}"


def _mb(size: int | None) -> str:
    return "unknown" if size is None else f"{size / 2**20:,.1f} MB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return timesince(timezone.now() - timedelta(seconds=seconds))


@admin.register(Overview)
class OverviewAdmin(MonitorPageAdmin):
    template_name = "admin/perf/monitor/overview.html"
    order = 10

    def page_context(self, request: HttpRequest) -> dict:
        checks = gather(request)
        worst = max((check.level for check in checks), key=_severity, default=Level.UNKNOWN)
        return {"checks": checks, "worst": worst}


def _severity(level: Level) -> int:
    return {Level.OK: 0, Level.UNKNOWN: 1, Level.WARNING: 2, Level.CRITICAL: 3}[level]

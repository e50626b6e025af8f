"""Prometheus metrics with the guide's names (SPEC section 1), on top of django-prometheus's.

django-prometheus counts what it already knows (``django_http_*`` by view, ``django_db_*`` by
alias, ``django_cache_*`` by backend); this module adds the names the guide, the alert rules
(deploy/prometheus/) and the Grafana dashboard (deploy/grafana/) use: latency by route
pattern, database time by table, the connection pool, the response cache and rate limits.

Under gunicorn every worker writes its values to PROMETHEUS_MULTIPROC_DIR
(deploy/gunicorn.conf.py) and GET /metrics adds the workers up: counters and histograms are
summed, the pool gauges use ``livesum`` (the workers alive now; a dead worker's values are
dropped by ``mark_process_dead`` in gunicorn's ``child_exit``). In a single process (tests,
runserver) the default registry answers.

Label sets an alert divides by must exist before the first event, or the alert sees no data:
:func:`create_zero_series` makes them at 0 when the app starts, and every cached kind makes
its own when it is defined (core/response_cache.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger("bountyexpo.metrics")

# In multiprocess mode every value lives in a file of PROMETHEUS_MULTIPROC_DIR. gunicorn creates
# it (deploy/gunicorn.conf.py); a command run with the same environment before the server starts
# (migrate in a deploy script or an init container) must not crash on the missing folder.
if _multiprocess_dir := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(_multiprocess_dir, exist_ok=True)

# --- HTTP ---------------------------------------------------------------------------------------
HTTP_BUCKETS_MS = (10, 50, 100, 200, 500, 1000, 2000, 5000)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_ms",
    "Time from the first middleware to the response, in milliseconds, by route pattern.",
    ["method", "route", "status_code"],
    buckets=HTTP_BUCKETS_MS,
)
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "Responses sent, by route pattern and status class.",
    ["method", "route", "status_code"],
)
HTTP_REQUEST_ERRORS = Counter(
    "http_request_errors_total",
    "Responses with status 400 or more, by the API error code of the body (error_type).",
    ["method", "route", "error_type"],
)

# --- PostgreSQL ---------------------------------------------------------------------------------
DB_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000)
DB_QUERY_DURATION = Histogram(
    "db_query_duration_ms",
    "Time of each SQL statement the app ran, in milliseconds, by operation and first table.",
    ["operation", "table"],
    buckets=DB_BUCKETS_MS,
)
DB_SLOW_QUERIES = Counter(
    "db_slow_queries_total",
    "Statements slower than SLOW_QUERY_MS (each is also logged).",
    ["operation", "table"],
)
POOL_STATES = ("active", "idle", "total", "waiting")
DB_POOL_SIZE = Gauge(
    "db_connection_pool_size",
    "psycopg pool connections, summed over the live workers: active (lent to a request), idle "
    "(open, free), total (open), waiting (requests queued for a connection).",
    ["state"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "db_connection_pool_max",
    "The pools' max_size, summed over the live workers (utilisation = active / this).",
    # A label, so that no value (and no file) exists until a serving process reports its pool:
    # a management command never adds its pool to the server's.
    ["alias"],
    multiprocess_mode="livesum",
)
DB_REPLICA_FALLBACKS = Counter(
    "db_replica_fallbacks_total",
    "Requests that could have read from a replica and read from the primary instead, by reason: "
    "read_your_writes (the user wrote within DATABASE_READ_YOUR_WRITES_SECONDS), lagging, failed "
    "(no usable replica), behind_cache (a page to cache needs writes the replica has not replayed), "
    "retried (the replica failed mid-request and it ran again on the primary).",
    ["reason"],
)
DB_POOL_WAITS = Counter(
    "db_connection_pool_waits_total", "Requests that had to queue for a pooled connection."
)
DB_POOL_TIMEOUTS = Counter(
    "db_connection_pool_timeouts_total",
    "Requests for a pooled connection that failed (timeout or queue full).",
)

# --- Redis --------------------------------------------------------------------------------------
CACHE_HITS = Counter(
    "cache_hits_total", "Responses served from the Redis cache (fresh).", ["cache_key_prefix"]
)
CACHE_STALE = Counter(
    "cache_stale_total",
    "Responses served from an expired entry, or one a write invalidated within the public lag, "
    "while one request refreshes it.",
    ["cache_key_prefix"],
)
CACHE_REFRESHES = Counter(
    "cache_refreshes_total",
    "Stale entries recomputed from PostgreSQL after the response that served them was sent, by "
    'outcome: "stored", "gone" (the row was deleted: entry dropped) or "failed" (entry kept).',
    ["cache_key_prefix", "outcome"],
)
REFRESH_OUTCOMES = ("stored", "gone", "failed")
HIT_PATH = Counter(
    "hit_path_requests_total",
    "GETs of cached routes seen by the lean hit path (core/hit_path.py), by outcome: "
    '"served" (answered from Redis in one round trip), or why the full path answered: "miss" (no '
    'entry it may serve as is), "limited" (over the rate limit), "new_token" (a token this process '
    'has not seen authenticated), "redis" (Redis failed or the cache is paused), "other".',
    ["outcome"],
)
HIT_PATH_OUTCOMES = ("served", "miss", "limited", "new_token", "redis", "other")
CACHE_MISSES = Counter(
    "cache_misses_total",
    "Responses computed from PostgreSQL: absent, expired or invalidated, or the cache off or down.",
    ["cache_key_prefix"],
)
CACHE_ERRORS = Counter(
    "cache_errors_total",
    "Redis calls that failed (the request went on without the cache), by key prefix; "
    '"plain" counts the plain aliases (tokens, view counts, idempotency, rate limits).',
    ["cache_key_prefix"],
)
PLAIN_ALIASES = "plain"
RATE_LIMITED = Counter("rate_limited_total", "Requests refused with 429, by rate-limit tier.", ["tier"])


_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def child(metric, *labels: str):
    """``metric.labels(*labels)``, remembered: ``labels()`` takes a lock and builds a key on every
    call, a dict lookup does not (the per-request counters of the hit path and the middleware)."""
    found = _children.get((metric, labels))
    if found is None:
        found = _children[(metric, labels)] = metric.labels(*labels)
    return found


def touch_cache_prefix(prefix: str) -> None:
    """Create the cache counters of ``prefix`` at 0 (an alert on a rate needs the series)."""
    for counter in (CACHE_HITS, CACHE_STALE, CACHE_MISSES, CACHE_ERRORS):
        counter.labels(prefix)
    for outcome in REFRESH_OUTCOMES:
        CACHE_REFRESHES.labels(prefix, outcome)


def create_zero_series() -> None:
    """Create at 0 every counter an alert or a dashboard divides by (core.apps, when the app
    starts)."""
    for outcome in HIT_PATH_OUTCOMES:
        HIT_PATH.labels(outcome)
    CACHE_ERRORS.labels(PLAIN_ALIASES)
    for tier in (*settings.RATE_LIMITS, "admin-login"):
        RATE_LIMITED.labels(tier)
    # Not the pool gauges: a livesum gauge of a process that never marks itself dead (a
    # management command) would stay in the server's sum. Serving processes report their pool
    # as they start (start_pool_reporting) and on every scrape (metrics_view).


# --- the pool gauges ----------------------------------------------------------------------------


class _PoolReporter:
    """Turns this process's psycopg pool statistics into the pool metrics.

    The gauges are set from ``get_stats()``; the waits and timeouts counters move by the
    difference from the previous reading (psycopg's counters are cumulative, and ``pop_stats``
    would reset them under the perf admin's publisher).
    """

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self.lock = threading.Lock()
        self.last: dict[str, int] = {}

    def report(self, stats: dict[str, Any] | None) -> None:
        if stats is None:
            return
        size = int(stats.get("pool_size", 0))
        available = int(stats.get("pool_available", 0))
        with self.lock:
            DB_POOL_SIZE.labels("active").set(max(0, size - available))
            DB_POOL_SIZE.labels("idle").set(available)
            DB_POOL_SIZE.labels("total").set(size)
            DB_POOL_SIZE.labels("waiting").set(int(stats.get("requests_waiting", 0)))
            DB_POOL_MAX.labels(self.alias).set(int(stats.get("pool_max", 0)))
            for key, counter in (("requests_queued", DB_POOL_WAITS), ("requests_errors", DB_POOL_TIMEOUTS)):
                value = int(stats.get(key, 0))
                previous = self.last.get(key, 0)
                # A smaller value means the counters were reset (pop_stats): count from zero.
                counter.inc(value - previous if value >= previous else value)
                self.last[key] = value


_pool_reporter = _PoolReporter()


def stats_of(pool) -> dict[str, int]:
    """``pool.get_stats()``, true for a pool not opened yet: Django opens a worker's pool on its
    first query, and until then psycopg reports ``pool_size`` = min_size with none available,
    which would read as min_size connections in use. A closed pool has no connections."""
    stats = dict(pool.get_stats())
    if pool.closed:
        stats.update(pool_size=0, pool_available=0, requests_waiting=0)
    return stats


def pool_stats(alias: str = "default") -> dict[str, int] | None:
    """The pool statistics of this process for ``alias`` (None without a pool). Never opens a
    connection."""
    from django.db import connections

    pool = connections[alias].pool
    return None if pool is None else stats_of(pool)


def report_pool(stats: dict[str, Any] | None = None) -> None:
    """Set the pool metrics from ``stats`` (by default this process's pool, read now)."""
    _pool_reporter.report(pool_stats() if stats is None else stats)


class _PoolGaugeThread(threading.Thread):
    """Reports the pool every METRICS_POOL_SECONDS, so a worker that serves no scrape (most of
    them: a scrape reaches one worker) still has current values in the summed gauges."""

    def __init__(self) -> None:
        super().__init__(name="metrics-pool", daemon=True)

    def run(self) -> None:
        while True:
            try:
                report_pool()
            except Exception:  # a metrics thread must never take the worker down
                logger.debug("pool metrics not reported", exc_info=True)
            time.sleep(settings.METRICS_POOL_SECONDS)


_thread: _PoolGaugeThread | None = None
_thread_lock = threading.Lock()


def start_pool_reporting() -> None:
    """Start this process's pool reporter once (gunicorn's ``post_worker_init``)."""
    global _thread
    if not settings.METRICS_ENABLED:
        return
    with _thread_lock:
        if _thread is not None and _thread.is_alive():
            return
        _thread = _PoolGaugeThread()
        _thread.start()


def metrics_view(request):
    """GET /metrics: Prometheus text of every live worker (django-prometheus's export view),
    with this worker's pool read just now; 404 when METRICS_ENABLED is off."""
    from django.http import Http404
    from django_prometheus.exports import ExportToDjangoView

    if not settings.METRICS_ENABLED:
        raise Http404
    report_pool()
    return ExportToDjangoView(request)

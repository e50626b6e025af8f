"""The connection pool page: every gunicorn worker's psycopg pool, and PostgreSQL's view of
the connections.

A pool lives in one process, so the worker that serves this page knows only its own. Every
worker therefore *publishes* its pool's ``get_stats()`` to Redis (a daemon thread started by
gunicorn's ``post_worker_init`` hook, ``start_publisher``), and the page reads what all of
them published:

- ``<prefix>perf-pool:v1:worker:<host>:<pid>``: the worker's latest statistics (JSON), expiring
  after three publishing periods, so a worker that died (or was recycled) drops off the page on
  its own.
- ``<prefix>perf-pool:v1:workers``: a sorted set naming the workers, scored by the moment each
  one's key expires, so the page finds them without walking the keyspace.
- ``<prefix>perf-pool:v1:history``: one sample per worker per period, scored by time, trimmed
  to PERF_POOL_HISTORY_MINUTES and to a hard cap of samples, for the page's sparklines.

The counters (requests, waits, errors) are psycopg_pool's cumulative ones: ``pop_stats()``
would reset them under anyone else reading them, so the page computes rates from the
differences between a worker's samples.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import psycopg
from django.conf import settings
from django.contrib import admin
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from core.cache_keys import make_key
from core.metrics import stats_of
from perf.monitor.charts import Chart, Series, Threshold, line_chart, nice, sparkline
from perf.monitor.db import Section, fetch, monitor_connection
from perf.monitor.models import ConnectionPool
from perf.monitor.pages import Level, MonitorPageAdmin, level_for

logger = logging.getLogger("bountyexpo.monitor")

REDIS_ALIAS = "default"
REDIS_ERRORS = (RedisError, OSError)
# A worker's key lives this many publishing periods: one missed publish (a busy GIL, a Redis
# blip) does not make a live worker vanish, a dead one is gone within seconds.
EXPIRY_PERIODS = 3
# The history keeps PERF_POOL_HISTORY_MINUTES for this many workers; a larger server keeps a
# shorter history instead of more memory (about 0.3 kB a sample: ~7 MB at the defaults).
HISTORY_MAX_WORKERS = 32
# The page's charts have at most this many points over the history.
HISTORY_BUCKETS = 60

# Every key psycopg_pool may report; zero-valued counters are absent from get_stats().
STAT_KEYS = (
    "pool_min",
    "pool_max",
    "pool_size",
    "pool_available",
    "requests_waiting",
    "requests_num",
    "requests_queued",
    "requests_wait_ms",
    "requests_errors",
    "returns_bad",
    "usage_ms",
    "connections_num",
    "connections_ms",
    "connections_errors",
    "connections_lost",
)
# What a history sample keeps: the gauges the sparklines draw and the counters their rates
# come from.
HISTORY_KEYS = (
    "pool_size",
    "pool_available",
    "requests_waiting",
    "requests_num",
    "requests_queued",
    "requests_wait_ms",
    "requests_errors",
    "connections_errors",
    "connections_lost",
)


# --- keys -------------------------------------------------------------------------------------


def _key(*parts: str) -> str:
    # In the cache's own namespace (KEY_PREFIX and version), beside what the app caches.
    return str(caches[REDIS_ALIAS].make_key(make_key("perf-pool", *parts)))


def worker_key(worker: str) -> str:
    return _key("worker", worker)


def index_key() -> str:
    return _key("workers")


def history_key() -> str:
    return _key("history")


def _redis():
    return get_redis_connection(REDIS_ALIAS)


# --- publishing, in every gunicorn worker --------------------------------------------------------


def worker_id() -> str:
    """This process, as the page names it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pool_stats() -> dict[str, int] | None:
    """This process's pool statistics with every key present (zeros filled in); None when the
    database is not configured with a pool. Never touches the database: a pool not opened yet
    (no request has needed a connection) reports its configured sizes and no connections."""
    pool = connections[DEFAULT_DB_ALIAS].pool
    if pool is None:
        return None
    stats = stats_of(pool)
    return {name: int(stats.get(name, 0)) for name in STAT_KEYS}


def publish_once(*, now: float | None = None) -> bool:
    """Publish this process's pool statistics once; False (and nothing raised) when there is no
    pool. Redis errors propagate to the caller, which decides how loudly to report them."""
    stats = pool_stats()
    if stats is None:
        return False
    now = time.time() if now is None else now
    period = settings.PERF_POOL_PUBLISH_SECONDS
    expiry = period * EXPIRY_PERIODS
    history_seconds = settings.PERF_POOL_HISTORY_MINUTES * 60
    worker = worker_id()
    record = {
        "worker": worker,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "time": now,
        "period": period,
        "stats": stats,
    }
    sample = {"worker": worker, "time": round(now, 3), **{name: stats[name] for name in HISTORY_KEYS}}
    max_samples = (history_seconds // period + 1) * HISTORY_MAX_WORKERS
    # One round trip; no MULTI needed: each command is correct on its own, and a reader that
    # sees the index before the key just finds the key missing and skips the worker.
    pipe = _redis().pipeline(transaction=False)
    pipe.set(worker_key(worker), json.dumps(record), ex=expiry)
    pipe.zadd(index_key(), {worker: now + expiry})
    pipe.zremrangebyscore(index_key(), "-inf", now)
    pipe.expire(index_key(), expiry)
    pipe.zadd(history_key(), {json.dumps(sample, separators=(",", ":")): now})
    pipe.zremrangebyscore(history_key(), "-inf", now - history_seconds)
    pipe.zremrangebyrank(history_key(), 0, -max_samples - 1)
    pipe.expire(history_key(), history_seconds)
    pipe.execute()
    return True


class _Publisher(threading.Thread):
    """Publishes every PERF_POOL_PUBLISH_SECONDS until the process ends (a daemon thread)."""

    def __init__(self) -> None:
        super().__init__(name="perf-pool-publisher", daemon=True)
        self.failing = False

    def run(self) -> None:
        while True:
            self.publish()
            time.sleep(settings.PERF_POOL_PUBLISH_SECONDS)

    def publish(self) -> None:
        try:
            publish_once()
        except REDIS_ERRORS as exc:
            # Said once per outage, not every few seconds: the cache layer reports Redis down.
            if not self.failing:
                logger.warning("pool statistics not published (Redis unreachable, will retry): %s", exc)
            self.failing = True
            return
        except Exception:  # a monitor thread must never take the worker down
            if not self.failing:
                logger.exception("pool statistics not published")
            self.failing = True
            return
        if self.failing:
            logger.info("pool statistics published again")
        self.failing = False


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def start_publisher() -> None:
    """Start this process's publisher, once (gunicorn's ``post_worker_init``, in the worker
    after the fork: the thread and the pool it reads are that worker's own)."""
    global _publisher
    with _publisher_lock:
        # A thread does not survive a fork: a child of a process that published starts its own.
        if _publisher is not None and _publisher.is_alive():
            return
        _publisher = _Publisher()
        _publisher.start()


# --- reading what the workers published ---------------------------------------------------------


@dataclass
class WorkerPool:
    """One worker's latest published statistics."""

    worker: str
    host: str
    pid: int
    published_at: float
    stats: dict[str, int]
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def in_use(self) -> int:
        return max(0, self.stats["pool_size"] - self.stats["pool_available"])

    @property
    def utilisation_pct(self) -> float | None:
        maximum = self.stats["pool_max"]
        return self.in_use / maximum * 100 if maximum else None

    @property
    def level(self) -> Level:
        return _pool_level(self.utilisation_pct)

    @property
    def avg_wait_ms(self) -> float | None:
        queued = self.stats["requests_queued"]
        return self.stats["requests_wait_ms"] / queued if queued else None

    @property
    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.published_at)

    def rate(self, counter: str, *, seconds: float = 60) -> float | None:
        """Per second over the last ``seconds`` of this worker's history (None without two
        samples there)."""
        recent = [s for s in self.history if s["time"] >= self.published_at - seconds]
        if len(recent) < 2 or recent[-1]["time"] <= recent[0]["time"]:
            return None
        delta = recent[-1][counter] - recent[0][counter]
        return max(0, delta) / (recent[-1]["time"] - recent[0]["time"])


def _pool_level(pct: float | None) -> Level:
    return level_for(pct, warning=settings.PERF_POOL_WARNING_PCT, critical=settings.PERF_POOL_CRITICAL_PCT)


def published_workers(client=None, *, now: float | None = None) -> list[WorkerPool]:
    """The workers whose statistics have not expired, by host and pid. Redis errors propagate."""
    client = client or _redis()
    now = time.time() if now is None else now
    names = [name.decode() for name in client.zrangebyscore(index_key(), now, "+inf")]
    if not names:
        return []
    workers = []
    for raw in client.mget([worker_key(name) for name in names]):
        if raw is None:  # expired between the two reads: that worker is gone
            continue
        record = json.loads(raw)
        stats = {name: int(record["stats"].get(name, 0)) for name in STAT_KEYS}
        workers.append(
            WorkerPool(record["worker"], record["host"], int(record["pid"]), float(record["time"]), stats)
        )
    return sorted(workers, key=lambda w: (w.host, w.pid))


def read_history(client=None, *, now: float | None = None) -> list[dict[str, Any]]:
    """Every sample of the last PERF_POOL_HISTORY_MINUTES, oldest first."""
    client = client or _redis()
    now = time.time() if now is None else now
    since = now - settings.PERF_POOL_HISTORY_MINUTES * 60
    return [json.loads(raw) for raw in client.zrangebyscore(history_key(), since, "+inf")]


@dataclass
class Totals:
    """The sums over the published workers."""

    workers: int = 0
    pool_min: int = 0
    pool_max: int = 0
    pool_size: int = 0
    pool_available: int = 0
    in_use: int = 0
    requests_waiting: int = 0
    requests_num: int = 0
    requests_queued: int = 0
    requests_wait_ms: int = 0
    requests_errors: int = 0
    connections_num: int = 0
    connections_errors: int = 0
    connections_lost: int = 0
    requests_per_s: float | None = None

    @classmethod
    def of(cls, workers: Iterable[WorkerPool]) -> Totals:
        totals = cls()
        summed = [f.name for f in fields(cls) if f.name in STAT_KEYS]
        rates = []
        for worker in workers:
            totals.workers += 1
            totals.in_use += worker.in_use
            for name in summed:
                setattr(totals, name, getattr(totals, name) + worker.stats[name])
            rates.append(worker.rate("requests_num"))
        known = [rate for rate in rates if rate is not None]
        totals.requests_per_s = sum(known) if known else None
        return totals

    @property
    def utilisation_pct(self) -> float | None:
        return self.in_use / self.pool_max * 100 if self.pool_max else None

    @property
    def avg_wait_ms(self) -> float | None:
        return self.requests_wait_ms / self.requests_queued if self.requests_queued else None


def worst_level(levels: Iterable[Level]) -> Level:
    """The most alarming of ``levels``; UNKNOWN when there are none."""
    order = [Level.CRITICAL, Level.WARNING, Level.OK]
    present = set(levels)
    return next((level for level in order if level in present), Level.UNKNOWN)


def pool_summary() -> dict[str, Any]:
    """The pool in one line, for the overview page (one cheap Redis read, no history).

    Keys: ``workers`` (publishing now), ``size``, ``in_use``, ``available``, ``waiting``,
    ``max`` (sums over the workers), ``utilisation_pct`` (in use / max over all workers, None
    without workers), ``level`` (the *worst worker's* utilisation against
    PERF_POOL_WARNING_PCT / PERF_POOL_CRITICAL_PCT: a saturated worker queues its own requests
    however idle the others are; UNKNOWN without workers or Redis), ``error`` (why nothing
    could be read, else None).
    """
    try:
        workers = published_workers()
    except REDIS_ERRORS as exc:
        workers, error = [], f"Redis is unreachable: {exc}"
    else:
        error = None
    totals = Totals.of(workers)
    return {
        "workers": totals.workers,
        "size": totals.pool_size,
        "in_use": totals.in_use,
        "available": totals.pool_available,
        "waiting": totals.requests_waiting,
        "max": totals.pool_max,
        "utilisation_pct": totals.utilisation_pct,
        "level": worst_level(worker.level for worker in workers),
        "error": error,
    }


# --- history ------------------------------------------------------------------------------------


@dataclass
class History:
    """The published samples in HISTORY_BUCKETS buckets: gauges summed over the workers (each
    worker's last sample in the bucket), counters as rates from each worker's differences."""

    start: float
    bucket_seconds: float
    in_use: list[float | None]
    size: list[float | None]
    waiting: list[float | None]
    requests_per_s: list[float | None]
    queued_per_min: list[float | None]
    avg_wait_ms: list[float | None]
    errors: list[float | None]
    per_worker_in_use: dict[str, list[float | None]]

    @property
    def has_data(self) -> bool:
        return any(value is not None for value in self.in_use)


def bucket_history(samples: list[dict[str, Any]], *, now: float) -> History:
    """Turn raw samples into per-bucket totals and rates over the history window."""
    window = settings.PERF_POOL_HISTORY_MINUTES * 60
    count = max(1, min(HISTORY_BUCKETS, int(window // settings.PERF_POOL_PUBLISH_SECONDS)))
    bucket_seconds = window / count
    start = now - window

    def bucket_of(t: float) -> int | None:
        index = int((t - start) // bucket_seconds)
        return None if index < 0 else min(index, count - 1)  # a sample from "now" joins the last

    by_worker: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        by_worker[sample["worker"]].append(sample)

    last: dict[tuple[str, int], dict[str, Any]] = {}
    deltas: dict[str, list[float]] = {
        name: [0.0] * count for name in ("requests", "queued", "wait", "errors")
    }
    seen = [False] * count
    for worker, series in by_worker.items():
        series.sort(key=lambda s: s["time"])
        previous = None
        for sample in series:
            index = bucket_of(sample["time"])
            if index is None:
                previous = sample
                continue
            seen[index] = True
            last[(worker, index)] = sample
            if previous is not None and sample["requests_num"] >= previous["requests_num"]:
                deltas["requests"][index] += sample["requests_num"] - previous["requests_num"]
                deltas["queued"][index] += sample["requests_queued"] - previous["requests_queued"]
                deltas["wait"][index] += sample["requests_wait_ms"] - previous["requests_wait_ms"]
                deltas["errors"][index] += sum(
                    sample[name] - previous[name]
                    for name in ("requests_errors", "connections_errors", "connections_lost")
                )
            previous = sample

    def gauge(pick) -> list[float | None]:
        values: list[float | None] = [None] * count
        for (_, index), sample in last.items():
            values[index] = (values[index] or 0) + pick(sample)
        return values

    def in_use(sample: dict[str, Any]) -> int:
        return max(0, sample["pool_size"] - sample["pool_available"])

    per_worker: dict[str, list[float | None]] = {}
    for (worker, index), sample in last.items():
        per_worker.setdefault(worker, [None] * count)[index] = in_use(sample)

    def rate(values: list[float], per: float) -> list[float | None]:
        return [value / bucket_seconds * per if seen[i] else None for i, value in enumerate(values)]

    avg_wait = [
        deltas["wait"][i] / deltas["queued"][i]
        if seen[i] and deltas["queued"][i]
        else (0.0 if seen[i] else None)
        for i in range(count)
    ]
    return History(
        start=start,
        bucket_seconds=bucket_seconds,
        in_use=gauge(in_use),
        size=gauge(lambda s: s["pool_size"]),
        waiting=gauge(lambda s: s["requests_waiting"]),
        requests_per_s=rate(deltas["requests"], 1),
        queued_per_min=rate(deltas["queued"], 60),
        avg_wait_ms=avg_wait,
        errors=[value if seen[i] else None for i, value in enumerate(deltas["errors"])],
        per_worker_in_use=per_worker,
    )


def history_chart(history: History, *, pool_max: int, now: float) -> str:
    """Connections in use, open and waiting over the window (x: minutes before now), with the
    levels' lines."""
    minutes = [
        (history.start + (i + 1) * history.bucket_seconds - now) / 60 for i in range(len(history.in_use))
    ]

    def points(values: list[float | None]) -> list[tuple[float, float | None]]:
        return list(zip(minutes, values, strict=True))

    thresholds = []
    if pool_max:
        thresholds = [
            Threshold(
                f"warning ({settings.PERF_POOL_WARNING_PCT} % of max)",
                pool_max * settings.PERF_POOL_WARNING_PCT / 100,
                "#E69F00",
            ),
            Threshold(
                f"critical ({settings.PERF_POOL_CRITICAL_PCT} % of max)",
                pool_max * settings.PERF_POOL_CRITICAL_PCT / 100,
            ),
        ]
    return line_chart(
        Chart(
            f"All workers, last {settings.PERF_POOL_HISTORY_MINUTES} min",
            [
                Series("in use", points(history.in_use)),
                Series("open (size)", points(history.size)),
                Series("waiting", points(history.waiting)),
            ],
            thresholds,
            x_unit="min",
        )
    )


# --- PostgreSQL's side ---------------------------------------------------------------------------

# Client backends only: the server's own processes (checkpointer, autovacuum...) use no slot
# that a client could.
ACTIVITY_TOTALS_SQL = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved,
       count(*) FILTER (WHERE backend_type = 'client backend') AS client_connections
FROM pg_stat_activity
"""

ACTIVITY_BY_STATE_SQL = """
SELECT coalesce(state, 'unknown') AS state,
       count(*) AS connections,
       -- Idle sessions always "wait" for their client (ClientRead): only active ones count.
       count(*) FILTER (WHERE state = 'active' AND wait_event IS NOT NULL) AS waiting_on_event,
       max(extract(epoch FROM now() - state_change)) AS longest_s
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1
ORDER BY 2 DESC, 1
"""

ACTIVITY_BY_APPLICATION_SQL = """
SELECT coalesce(nullif(application_name, ''), '(none)') AS application,
       coalesce(datname, '') AS database,
       count(*) AS connections,
       count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))
           AS idle_in_transaction,
       max(extract(epoch FROM now() - xact_start)) AS oldest_transaction_s
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1, 2
ORDER BY 3 DESC, 1, 2
LIMIT 50
"""


def _seconds(value: Any) -> str:
    # now() is the monitor's own transaction start, a hair before its state_change: clamp.
    return "" if value is None else nice(max(0.0, float(value))) + " s"


def _activity(conn: psycopg.Connection | None) -> dict[str, Section]:
    """pg_stat_activity by state and by application, and the server's connection limit."""
    totals = fetch(conn, ACTIVITY_TOTALS_SQL)
    by_state = fetch(conn, ACTIVITY_BY_STATE_SQL)
    by_application = fetch(conn, ACTIVITY_BY_APPLICATION_SQL)
    for row in by_state.rows:
        row["longest"] = _seconds(row["longest_s"])
    for row in by_application.rows:
        row["oldest_transaction"] = _seconds(row["oldest_transaction_s"])
    if totals.rows:
        row = totals.first()
        usable = max(1, row["max_connections"] - row["reserved"])
        row["used_pct"] = nice(row["client_connections"] / usable * 100)
        row["level"] = level_for(
            row["client_connections"] / usable * 100,
            warning=settings.PERF_CONNECTIONS_WARNING_PCT,
            critical=settings.PERF_CONNECTIONS_CRITICAL_PCT,
        )
    return {"totals": totals, "by_state": by_state, "by_application": by_application}


# --- the page ------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{nice(value)} %"


def _num(value: float | None) -> str:
    return "-" if value is None else nice(value)


@admin.register(ConnectionPool)
class ConnectionPoolAdmin(MonitorPageAdmin):
    template_name = "admin/perf/monitor/pool.html"
    order = 20

    def page_context(self, request: HttpRequest) -> dict[str, Any]:
        now = time.time()
        redis_error = None
        workers: list[WorkerPool] = []
        samples: list[dict[str, Any]] = []
        try:
            client = _redis()
            workers = published_workers(client, now=now)
            samples = read_history(client, now=now)
        except REDIS_ERRORS as exc:
            redis_error = (
                f"Redis is unreachable, so the workers' published pool statistics cannot be read: {exc}"
            )
        by_worker: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for sample in samples:
            by_worker[sample["worker"]].append(sample)
        for worker in workers:
            worker.history = sorted(by_worker.get(worker.worker, []), key=lambda s: s["time"])
        totals = Totals.of(workers)
        history = bucket_history(samples, now=now)
        rows = [
            {
                "worker": worker,
                "in_use": worker.in_use,
                "utilisation": _pct(worker.utilisation_pct),
                "level": worker.level,
                "avg_wait": _num(worker.avg_wait_ms),
                "requests_per_s": _num(worker.rate("requests_num")),
                "age": f"{worker.age_seconds:.0f}",
                "sparkline": sparkline(history.per_worker_in_use.get(worker.worker, []), label="in use"),
            }
            for worker in workers
        ]
        with monitor_connection() as conn:
            activity = _activity(conn)
        sparklines = [
            ("Connections in use", history.in_use, "all workers, each one's last sample per bucket"),
            ("Requests waiting", history.waiting, "requests queued for a connection at that moment"),
            ("Requests per second", history.requests_per_s, "connection checkouts per second"),
            ("Waits per minute", history.queued_per_min, "checkouts that had to queue"),
            ("Average wait (ms)", history.avg_wait_ms, "per checkout that queued"),
            ("Errors", history.errors, "timeouts and refusals, failed and lost connections"),
        ]
        return {
            "redis_error": redis_error,
            "rows": rows,
            "totals": totals,
            "totals_utilisation": _pct(totals.utilisation_pct),
            "totals_level": _pool_level(totals.utilisation_pct),
            "worst_level": worst_level(worker.level for worker in workers),
            "totals_avg_wait": _num(totals.avg_wait_ms),
            "totals_requests_per_s": _num(totals.requests_per_s),
            "history_chart": history_chart(history, pool_max=totals.pool_max, now=now)
            if history.has_data
            else None,
            "sparklines": [
                {
                    "title": title,
                    "help": help_text,
                    "svg": sparkline(values, label=title, width=240, height=32),
                    "last": _num(next((v for v in reversed(values) if v is not None), None)),
                    "peak": _num(max((v for v in values if v is not None), default=None)),
                }
                for title, values, help_text in sparklines
            ],
            "activity": activity,
            "publish_seconds": settings.PERF_POOL_PUBLISH_SECONDS,
            "expiry_seconds": settings.PERF_POOL_PUBLISH_SECONDS * EXPIRY_PERIODS,
            "history_minutes": settings.PERF_POOL_HISTORY_MINUTES,
            "warning_pct": settings.PERF_POOL_WARNING_PCT,
            "critical_pct": settings.PERF_POOL_CRITICAL_PCT,
            "connections_warning_pct": settings.PERF_CONNECTIONS_WARNING_PCT,
            "connections_critical_pct": settings.PERF_CONNECTIONS_CRITICAL_PCT,
        }

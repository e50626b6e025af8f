"""What the load test watches besides response times: the server's and the generator's CPU
and memory, PostgreSQL (pg_stat_statements delta, connections by state), Redis hits, and the
server's response-cache hits from its /metrics."""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from django.conf import settings
from django.db import connection
from django_redis import get_redis_connection
from prometheus_client.parser import text_string_to_metric_families

DEFAULT_PIDFILE = Path(settings.BASE_DIR) / ".local" / "gunicorn.pid"


def server_processes(pid: int | None) -> list[psutil.Process]:
    """The server's master and workers: ``pid`` (or make run's pidfile) and its children."""
    if pid is None:
        if not DEFAULT_PIDFILE.exists():
            return []
        pid = int(DEFAULT_PIDFILE.read_text().strip())
    try:
        master = psutil.Process(pid)
        return [master, *master.children(recursive=True)]
    except psutil.Error:
        return []


# Local services share the machine with the server: their CPU is part of the picture.
SERVICE_PROCESS_NAMES = {"database": "postgres", "redis": "redis-server"}


def service_processes() -> dict[str, list[psutil.Process]]:
    """The local services' processes by role, in one walk over the process table."""
    roles = {name: role for role, name in SERVICE_PROCESS_NAMES.items()}
    found: dict[str, list[psutil.Process]] = {role: [] for role in SERVICE_PROCESS_NAMES}
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in roles:
            found[roles[process.info["name"]]].append(process)
    return found


@dataclass
class ResourceSamples:
    server_cpu: list[float] = field(default_factory=list)  # % of the whole machine
    server_rss_mb: list[float] = field(default_factory=list)
    generator_cpu: list[float] = field(default_factory=list)  # % of one core
    database_cpu: list[float] = field(default_factory=list)  # % of the whole machine
    redis_cpu: list[float] = field(default_factory=list)  # % of the whole machine
    machine_cpu: list[float] = field(default_factory=list)  # % of the whole machine, everything
    connections: list[dict[str, int]] = field(default_factory=list)

    def summary(self) -> dict:
        def stats(values: list[float]) -> dict | None:
            # None, not zeros: an unmeasured figure must not read as an idle machine.
            return {"avg": sum(values) / len(values), "max": max(values)} if values else None

        states: dict[str, int] = {}
        for sample in self.connections:
            for state, count in sample.items():
                states[state] = max(states.get(state, 0), count)
        return {
            "server_cpu_percent": stats(self.server_cpu),
            "server_rss_mb": stats(self.server_rss_mb),
            "generator_cpu_percent_of_core": stats(self.generator_cpu),
            "database_cpu_percent": stats(self.database_cpu),
            "redis_cpu_percent": stats(self.redis_cpu),
            "machine_cpu_percent": stats(self.machine_cpu),
            "cpu_count": psutil.cpu_count(),
            "memory_total_mb": psutil.virtual_memory().total / 2**20,
            "max_connections_by_state": states,
        }


class Sampler(threading.Thread):
    """Samples once a second until stopped; the server list is refreshed (gunicorn recycles)."""

    def __init__(self, *, server_pid: int | None, generator: psutil.Process):
        super().__init__(daemon=True)
        self.server_pid = server_pid
        self.generator = generator
        self.samples = ResourceSamples()
        self._halt = threading.Event()  # not _stop: Thread has a method of that name
        # Keyed by the process itself: psutil hashes (pid, creation time), so a reused pid of a
        # new PostgreSQL backend is a new entry, not the dead one's baseline.
        self._known: dict[psutil.Process, psutil.Process] = {}

    def stop(self) -> ResourceSamples:
        self._halt.set()
        self.join(timeout=5)
        return self.samples

    def _services_cpu(self, processes: list[psutil.Process]) -> float:
        """CPU of these processes; backends that ended meanwhile count as 0."""
        total = 0.0
        for process in processes:
            try:
                total += self._cpu(process)
            except psutil.Error:
                self._known.pop(process, None)
        return total

    def _cpu(self, process: psutil.Process) -> float:
        # cpu_percent() compares with the previous call on the same object, so keep the objects.
        known = self._known.setdefault(process, process)
        return known.cpu_percent(None)

    def run(self) -> None:
        try:
            self._sample_until_stopped()
        finally:
            connection.close()  # this thread's own connection, back to the pool

    def _prime(self) -> None:
        """A first cpu_percent() call only starts a measurement (it returns 0): make it now, for
        every process, so that the first one-second sample is already a real figure."""
        psutil.cpu_percent(None)
        for process in [*server_processes(self.server_pid), self.generator]:
            try:
                self._cpu(process)
            except psutil.Error:
                continue
        for processes in service_processes().values():
            self._services_cpu(processes)

    def _sample_until_stopped(self) -> None:
        cores = psutil.cpu_count() or 1
        self._prime()
        while not self._halt.wait(1.0):
            processes = server_processes(self.server_pid)
            try:
                cpu = sum(self._cpu(p) for p in processes)
                rss = sum(p.memory_info().rss for p in processes) / 2**20
                generator = self._cpu(self.generator) + sum(
                    self._cpu(c) for c in self.generator.children(True)
                )
            except psutil.Error:
                continue
            self.samples.machine_cpu.append(psutil.cpu_percent(None))
            services = service_processes()
            self.samples.database_cpu.append(self._services_cpu(services["database"]) / cores)
            self.samples.redis_cpu.append(self._services_cpu(services["redis"]) / cores)
            if processes:
                self.samples.server_cpu.append(cpu / cores)
                self.samples.server_rss_mb.append(rss)
            self.samples.generator_cpu.append(generator)
            self.samples.connections.append(connections_by_state())


def connections_by_state() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(state, 'background'), count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() GROUP BY 1"
        )
        return dict(cursor.fetchall())


def statements_snapshot() -> dict[int, tuple[str, int, float]]:
    """queryid -> (query, calls, total exec ms) for this database, from pg_stat_statements."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT queryid, query, calls, total_exec_time FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return {queryid: (query, calls, total) for queryid, query, calls, total in cursor.fetchall()}


# The load test's own monitoring queries are not the server's work.
MONITORING = ("pg_stat_statements", "pg_stat_activity")


def statements_delta(before: dict, after: dict, top: int = 10) -> list[dict]:
    """The queries that took the most database time between two snapshots."""
    rows = []
    for queryid, (query, calls, total) in after.items():
        if any(view in query for view in MONITORING):
            continue
        _, calls_before, total_before = before.get(queryid, (query, 0, 0.0))
        delta_calls, delta_ms = calls - calls_before, total - total_before
        if delta_calls > 0:
            rows.append(
                {
                    "query": query,
                    "calls": delta_calls,
                    "total_ms": delta_ms,
                    "mean_ms": delta_ms / delta_calls,
                }
            )
    return sorted(rows, key=lambda row: -row["total_ms"])[:top]


def redis_counters() -> dict[str, int]:
    stats = get_redis_connection("default").info("stats")
    return {"hits": int(stats.get("keyspace_hits", 0)), "misses": int(stats.get("keyspace_misses", 0))}


def redis_delta(before: dict[str, int], after: dict[str, int]) -> dict:
    hits, misses = after["hits"] - before["hits"], after["misses"] - before["misses"]
    lookups = hits + misses
    return {"hits": hits, "misses": misses, "hit_ratio": hits / lookups if lookups else None}


RESPONSE_CACHE_COUNTERS = {"cache_hits": "hits", "cache_stale": "stale", "cache_misses": "misses"}


def response_cache_counters(host: str) -> dict[str, dict[str, float]] | None:
    """The server's response-cache counters by key prefix, from its /metrics (all workers);
    None when the server does not export them."""
    try:
        with urllib.request.urlopen(f"{host}/metrics", timeout=5) as response:  # noqa: S310 (operator's URL)
            text = response.read().decode()
    except OSError:
        return None
    counters: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in RESPONSE_CACHE_COUNTERS:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                prefix = sample.labels.get("cache_key_prefix", "?")
                counters.setdefault(prefix, {}).setdefault(RESPONSE_CACHE_COUNTERS[family.name], 0.0)
                counters[prefix][RESPONSE_CACHE_COUNTERS[family.name]] += sample.value
    return counters


class CacheScraper(threading.Thread):
    """Scrapes the server's response-cache counters at the start of every wall-clock second until
    stopped, for the churn profile's hit ratio per second (churn.cache_series makes increases of
    them). A scrape slower than a second skips the next one rather than queueing behind it."""

    def __init__(self, host: str):
        super().__init__(daemon=True)
        self.host = host
        self.scrapes: list[tuple[int, dict[str, dict[str, float]] | None]] = []
        self._halt = threading.Event()

    def stop(self) -> list[tuple[int, dict[str, dict[str, float]] | None]]:
        self._halt.set()
        self.join(timeout=10)
        return self.scrapes

    def run(self) -> None:
        while not self._halt.wait(1 - time.time() % 1):
            second = int(time.time())
            if self.scrapes and self.scrapes[-1][0] >= second:  # woke a hair early
                continue
            self.scrapes.append((second, response_cache_counters(self.host)))


def response_cache_delta(before: dict | None, after: dict | None) -> dict:
    """Served from cache (fresh or stale) over all cached-endpoint responses, per key prefix."""
    if before is None or after is None:
        return {"by_prefix": {}, "hit_ratio": None}
    by_prefix = {}
    for prefix, counts in after.items():
        earlier = before.get(prefix, {})
        delta = {
            name: int(counts.get(name, 0) - earlier.get(name, 0)) for name in ("hits", "stale", "misses")
        }
        served = sum(delta.values())
        delta["hit_ratio"] = (delta["hits"] + delta["stale"]) / served if served else None
        by_prefix[prefix] = delta
    hits = sum(d["hits"] + d["stale"] for d in by_prefix.values())
    total = sum(d["hits"] + d["stale"] + d["misses"] for d in by_prefix.values())
    return {"by_prefix": by_prefix, "hit_ratio": hits / total if total else None}

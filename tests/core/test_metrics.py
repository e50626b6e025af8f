"""The guide's Prometheus metrics: names, labels and buckets, route patterns, the pool gauges,
the slow-query log, django-prometheus over the native pool, and two gunicorn workers summed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import psycopg_pool
import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from core.instrumentation import classify, normalise, route_label
from tests.conftest import connections_held, gunicorn_server, subprocess_env
from tests.factories import paid_bounty

pytestmark = pytest.mark.django_db


def scrape(client) -> dict[str, object]:
    """The families of GET /metrics by name."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(families, name: str, suffix: str = "") -> list:
    return [sample for sample in families[name].samples if sample.name == name + suffix]


def value(families, name: str, suffix: str = "", **labels: str) -> float:
    return sum(
        sample.value
        for sample in samples(families, name, suffix)
        if all(sample.labels.get(key) == wanted for key, wanted in labels.items())
    )


def delta(before, after, name: str, suffix: str = "", **labels: str) -> float:
    return value(after, name, suffix, **labels) - (
        value(before, name, suffix, **labels) if name in before else 0
    )


def run_in_fresh_process(script: str, **env: str) -> subprocess.CompletedProcess:
    """``python -c script`` in a new process on the test database, single-process metrics; it
    must exit 0."""
    environment = subprocess_env(DJANGO_SETTINGS_MODULE="bountyexpo.settings", **env)
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_guide_metrics_have_their_names_labels_and_buckets(api_client):
    bounty = paid_bounty(amount="12.00")
    before = scrape(api_client)
    api_client.get("/api/bounties")
    api_client.get(f"/api/bounties/{bounty.pk}")
    api_client.get("/api/bounties/999999999")
    api_client.get("/no/such/page")

    families = scrape(api_client)

    duration = families["http_request_duration_ms"]
    assert duration.type == "histogram"
    buckets = {sample.labels["le"] for sample in samples(families, "http_request_duration_ms", "_bucket")}
    assert sorted(buckets, key=float) == ["10.0", "50.0", "100.0", "200.0", "500.0", "1000.0", "2000.0", "5000.0", "+Inf"]  # fmt: skip  # noqa: E501
    counts = samples(families, "http_request_duration_ms", "_count")
    assert {key for sample in counts for key in sample.labels} == {"method", "route", "status_code"}
    assert families["http_requests"].type == "counter"
    assert (
        delta(
            before,
            families,
            "http_requests",
            "_total",
            method="GET",
            route="/api/bounties",
            status_code="2xx",
        )
        == 1
    )
    assert (
        delta(before, families, "http_requests", "_total", route="/api/bounties/{id}", status_code="4xx") == 1
    )
    assert (
        delta(
            before,
            families,
            "http_request_errors",
            "_total",
            route="/api/bounties/{id}",
            error_type="not_found",
        )
        == 1
    )
    assert (
        delta(before, families, "http_request_errors", "_total", route="unmatched", error_type="not_found")
        == 1
    )

    query = families["db_query_duration_ms"]
    assert query.type == "histogram"
    buckets = {sample.labels["le"] for sample in samples(families, "db_query_duration_ms", "_bucket")}
    assert sorted(buckets, key=float) == [
        "5.0",
        "10.0",
        "25.0",
        "50.0",
        "100.0",
        "250.0",
        "500.0",
        "1000.0",
        "+Inf",
    ]
    assert value(families, "db_query_duration_ms", "_count", operation="select", table="bounties_bounty") >= 1

    assert {sample.labels["state"] for sample in samples(families, "db_connection_pool_size")} == {
        "active", "idle", "total", "waiting",
    }  # fmt: skip
    assert families["db_connection_pool_size"].type == "gauge"
    assert samples(families, "db_connection_pool_max")[0].value == settings.DATABASE_POOL_MAX
    for name in ("db_connection_pool_waits", "db_connection_pool_timeouts", "db_slow_queries"):
        assert families[name].type == "counter"


def test_every_alerting_label_combination_exists_at_zero_before_any_event():
    """In a fresh process whose only request is the scrape itself: every cache kind's four
    counters, the plain aliases' errors and every rate-limit tier are there, at 0."""
    script = (
        "import django; django.setup(); from django.test import Client; "
        "print(Client(HTTP_HOST='localhost').get('/metrics').content.decode())"
    )
    result = run_in_fresh_process(script)
    families = {family.name: family for family in text_string_to_metric_families(result.stdout)}

    def zeros(name: str, label: str) -> dict[str, float]:
        return {sample.labels[label]: sample.value for sample in samples(families, name, "_total")}

    prefixes = {"bounty-list", "bounty-detail", "bounty-search", "profile", "user-stats", "conversation-list"}
    for name in ("cache_hits", "cache_misses", "cache_stale", "cache_errors"):
        assert {prefix: zeros(name, "cache_key_prefix").get(prefix) for prefix in prefixes} == dict.fromkeys(
            prefixes, 0.0
        ), name
    assert zeros("cache_errors", "cache_key_prefix")["plain"] == 0.0
    tiers = {*settings.RATE_LIMITS, "admin-login"}
    assert {tier: zeros("rate_limited", "tier").get(tier) for tier in tiers} == dict.fromkeys(tiers, 0.0)


def test_the_route_label_is_the_pattern_never_the_id(api_client):
    first, second = paid_bounty(amount="5.00"), paid_bounty(amount="6.00")
    before = scrape(api_client)
    count_before = value(before, "http_requests", "_total", route="/api/bounties/{id}", status_code="2xx")

    api_client.get(f"/api/bounties/{first.pk}")
    api_client.get(f"/api/bounties/{second.pk}")
    api_client.get(f"/api/profiles/{first.owner_id}/stats")
    families = scrape(api_client)

    assert (
        value(families, "http_requests", "_total", route="/api/bounties/{id}", status_code="2xx")
        == count_before + 2
    )
    assert delta(before, families, "http_requests", "_total", route="/api/profiles/{id}/stats") == 1
    routes = {sample.labels["route"] for sample in samples(families, "http_requests", "_total")}
    assert not [route for route in routes if any(char.isdigit() for char in route)]


@pytest.mark.parametrize(
    ("pattern", "label"),
    [
        ("api/^bounties/(?P<pk>[^/.]+)$", "/api/bounties/{id}"),
        ("api/^bounties/(?P<pk>[^/.]+)/complete$", "/api/bounties/{id}/complete"),
        ("api/bounties/<int:bounty_pk>/requests", "/api/bounties/{bounty_pk}/requests"),
        ("api/profiles/<int:pk>/stats", "/api/profiles/{id}/stats"),
        ("admin/bounties/bounty/<path:object_id>/change/", "/admin/bounties/bounty/{object_id}/change/"),
        ("metrics", "/metrics"),
    ],
)
def test_route_labels_are_written_as_the_schema_writes_paths(pattern, label):
    assert route_label(pattern) == label


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            'SELECT "bounties_bounty"."id" FROM "bounties_bounty" WHERE "id" = %s',
            ("select", "bounties_bounty"),
        ),
        (
            'INSERT INTO "wallet_wallettransaction" ("user_id") VALUES (%s)',
            ("insert", "wallet_wallettransaction"),
        ),
        ('UPDATE "bounties_bounty" SET "view_count" = %s', ("update", "bounties_bounty")),
        ('DELETE FROM "messaging_message" WHERE "id" IN (%s)', ("delete", "messaging_message")),
        ('SAVEPOINT "s1"', ("other", "none")),
        ("SELECT 1", ("select", "none")),
    ],
)
def test_statements_are_labelled_by_operation_and_first_table(sql, expected):
    assert classify(sql) == expected


def test_normalised_sql_keeps_no_values():
    sql = "SELECT * FROM t WHERE a = %s AND b IN (%s, %s, %s) AND c = 'x@example.com' AND d > 42"
    assert normalise(sql) == "SELECT * FROM t WHERE a = ? AND b IN (?, ...) AND c = ? AND d > ?"


@pytest.mark.django_db(transaction=True)
def test_the_pool_gauge_moves_while_connections_are_held(api_client):
    assert connections["default"].pool is not None
    before = value(scrape(api_client), "db_connection_pool_size", state="active")
    with connections_held(3):
        during = scrape(api_client)
    after = scrape(api_client)

    assert value(during, "db_connection_pool_size", state="active") == before + 3
    assert value(during, "db_connection_pool_size", state="total") >= before + 3
    assert value(after, "db_connection_pool_size", state="active") == before


def test_pool_waits_and_timeouts_count_the_differences_of_psycopg_counters():
    waits = REGISTRY.get_sample_value("db_connection_pool_waits_total")
    timeouts = REGISTRY.get_sample_value("db_connection_pool_timeouts_total")
    reporter = metrics._PoolReporter()

    reporter.report({"pool_size": 4, "pool_available": 1, "pool_max": 20, "requests_queued": 5})
    reporter.report(
        {"pool_size": 4, "pool_available": 4, "pool_max": 20, "requests_queued": 8, "requests_errors": 2}
    )
    reporter.report({"pool_size": 4, "pool_available": 4, "pool_max": 20, "requests_queued": 1})  # reset

    assert REGISTRY.get_sample_value("db_connection_pool_waits_total") == waits + 8 + 1
    assert REGISTRY.get_sample_value("db_connection_pool_timeouts_total") == timeouts + 2


def test_a_slow_query_is_logged_once_with_route_request_id_and_sql_and_counted(settings, caplog):
    settings.ROOT_URLCONF = "tests.core.urls_errors"
    settings.SLOW_QUERY_MS = 30
    labels = {"operation": "select", "table": "none"}
    counted = REGISTRY.get_sample_value("db_slow_queries_total", labels) or 0

    with caplog.at_level(logging.WARNING, logger="bountyexpo.slow_query"):
        response = Client(raise_request_exception=False).get(
            "/test/slow-query-plain", headers={"X-Request-ID": "slow-probe-1"}
        )

    assert response.status_code == 503  # statement_timeout 50 ms cancelled pg_sleep(2)
    records = [record for record in caplog.records if record.name == "bountyexpo.slow_query"]
    assert len(records) == 1
    record = records[0]
    assert record.duration_ms >= 30
    assert record.route == "/test/slow-query-plain"
    assert record.request_id == "slow-probe-1"
    assert record.sql == "SELECT pg_sleep(?)"
    assert REGISTRY.get_sample_value("db_slow_queries_total", labels) == counted + 1


def test_a_fast_query_is_neither_logged_nor_counted_as_slow(settings, caplog):
    settings.SLOW_QUERY_MS = 10_000
    counted = (
        REGISTRY.get_sample_value("db_slow_queries_total", {"operation": "select", "table": "none"}) or 0
    )
    with caplog.at_level(logging.WARNING, logger="bountyexpo.slow_query"), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.05)")
    assert not [record for record in caplog.records if record.name == "bountyexpo.slow_query"]
    assert (
        REGISTRY.get_sample_value("db_slow_queries_total", {"operation": "select", "table": "none"}) or 0
    ) == counted


def test_django_prometheus_cursors_run_on_djangos_native_pool():
    labels = {"alias": "default", "vendor": "postgresql"}
    executed = REGISTRY.get_sample_value("django_db_execute_total", labels) or 0

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")

    assert connection.pool is not None  # Django's psycopg pool, configured by OPTIONS["pool"]
    assert connection.pool.get_stats()["pool_size"] >= 1
    factory = connection.connection.cursor_factory
    assert factory.__name__ == "CursorWrapper" and factory.__module__.startswith("django_prometheus")
    assert issubclass(factory, psycopg.Cursor)
    assert REGISTRY.get_sample_value("django_db_execute_total", labels) == executed + 1


@pytest.mark.django_db(transaction=True)
def test_a_pooled_checkout_builds_no_cursor_class_and_its_queries_are_still_counted(monkeypatch):
    """Django computes connection parameters on every connect, and django-prometheus built a
    cursor class each time; core.db.base builds one per alias."""
    from django_prometheus.db import common as prometheus_common
    from django_prometheus.db.backends.postgresql import base as prometheus_base

    real, built = prometheus_common.ExportingCursorWrapper, []
    for module in (prometheus_common, prometheus_base):  # where django-prometheus and core.db.base look
        monkeypatch.setattr(module, "ExportingCursorWrapper", lambda *args: built.append(args) or real(*args))
    connection.ensure_connection()  # the pool, and this alias's cursor class, exist from here on
    built.clear()
    labels = {"alias": "default", "vendor": "postgresql"}
    executed = REGISTRY.get_sample_value("django_db_execute_total", labels) or 0
    factories = set()

    for _ in range(3):
        connection.close()  # back to the pool; the next query takes a connection out again
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        factories.add(connection.connection.cursor_factory)

    assert built == []
    (factory,) = factories
    assert factory.__module__.startswith("django_prometheus") and issubclass(factory, psycopg.Cursor)
    assert REGISTRY.get_sample_value("django_db_execute_total", labels) == executed + 3


@pytest.mark.django_db(transaction=True)
def test_the_pools_checkouts_make_no_log_records_and_its_events_still_log(monkeypatch):
    pool_logger, made = logging.getLogger("psycopg.pool"), []
    make_record = pool_logger.makeRecord
    monkeypatch.setattr(pool_logger, "makeRecord", lambda *args: made.append(args[0:6]) or make_record(*args))
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    pool_logger.addHandler(handler)
    try:
        for _ in range(3):
            connection.close()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        assert made == []
        psycopg_pool.pool.logger.info("growing pool %r to %s", "default", 6)  # as the pool logs it
    finally:
        pool_logger.removeHandler(handler)

    (record,) = seen
    assert (record.name, record.getMessage()) == ("psycopg.pool", "growing pool 'default' to 6")
    assert record.pathname == __file__  # the caller's frame, not the stand-in's


def test_with_metrics_off_nothing_is_measured_and_metrics_is_not_served():
    script = (
        "import django; django.setup(); "
        "from django.conf import settings; from django.db import connections; "
        "from django.test import Client; "
        "assert not [m for m in settings.MIDDLEWARE if 'instrumentation' in m], settings.MIDDLEWARE; "
        "assert connections['default'].execute_wrappers == [], connections['default'].execute_wrappers; "
        "assert settings.CACHES['default']['BACKEND'] == 'django_redis.cache.RedisCache'; "
        "print(Client(HTTP_HOST='localhost').get('/metrics').status_code)"
    )
    result = run_in_fresh_process(script, METRICS_ENABLED="0")
    assert result.stdout.strip().splitlines()[-1] == "404"


@pytest.mark.django_db(transaction=True)
def test_counts_add_up_across_two_gunicorn_workers(tmp_path):
    bounty = paid_bounty(amount="9.00")
    batch, requests = 160, 0
    with gunicorn_server(tmp_path, RATELIMIT_ENABLE="0") as server:
        url = f"{server.url}/api/bounties/{bounty.pk}"

        def fetch(_: int) -> int:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our http URL)
                return response.status

        # Whichever worker accepts first takes a connection: one quick to answer cached details
        # can take a whole batch. Batches go on (each counted) until both workers served some.
        for _ in range(10):
            with ThreadPoolExecutor(16) as executor:
                assert set(executor.map(fetch, range(batch))) == {200}
            requests += batch
            per_worker = requests_per_worker(server.metrics_dir, "/api/bounties/{id}")
            if len(per_worker) == 2:
                break
        body = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()  # noqa: S310

    families = {family.name: family for family in text_string_to_metric_families(body)}
    assert len(per_worker) == 2 and all(per_worker.values()), per_worker  # both workers served some
    assert sum(per_worker.values()) == requests
    assert (
        value(families, "http_requests", "_total", route="/api/bounties/{id}", status_code="2xx") == requests
    )
    assert value(families, "http_request_duration_ms", "_count", route="/api/bounties/{id}") == requests
    # Each live worker's pool max_size, summed (livesum): both workers' gauges are there.
    assert samples(families, "db_connection_pool_max")[0].value == 2 * settings.DATABASE_POOL_MAX


def requests_per_worker(directory: Path, route: str) -> dict[int, float]:
    """http_requests_total of ``route`` in each worker's own file (counter_<pid>.db)."""
    counts: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, count, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):
            name, _sample, labels, _help = json.loads(key)
            if name == "http_requests" and labels.get("route") == route:
                counts[pid] = counts.get(pid, 0) + count
    return counts


def test_a_command_run_with_the_servers_metrics_folder_neither_crashes_nor_joins_its_gauges(tmp_path):
    """A deploy runs ``migrate`` with the server's environment, before gunicorn made the folder."""
    folder = tmp_path / "not-yet" / "metrics"
    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(folder))
    command = [sys.executable, "manage.py", "check"]
    result = subprocess.run(
        command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert folder.is_dir()
    assert not list(folder.glob("gauge_*")), list(folder.iterdir())  # livesum gauges: servers only


def test_a_pool_no_request_has_opened_counts_no_connection_in_use():
    """Django opens a worker's pool on its first query; until then psycopg reports min_size
    connections with none available, which is not min_size in use."""
    pool = psycopg_pool.ConnectionPool("dbname=never-opened", min_size=3, max_size=7, open=False)
    assert pool.get_stats()["pool_size"] == 3 and pool.get_stats()["pool_available"] == 0  # psycopg's view

    stats = metrics.stats_of(pool)
    reporter = metrics._PoolReporter(alias="never-opened")
    reporter.report(stats)

    assert (stats["pool_size"], stats["pool_available"]) == (0, 0)
    assert REGISTRY.get_sample_value("db_connection_pool_size", {"state": "active"}) == 0
    assert REGISTRY.get_sample_value("db_connection_pool_max", {"alias": "never-opened"}) == 7


@pytest.mark.django_db(transaction=True)
def test_recycled_workers_are_folded_into_an_archive_and_their_counts_kept(tmp_path):
    """gunicorn replaces a worker after max_requests; each dead worker's files used to stay in
    the folder for good, and every scrape read them all."""
    bounty = paid_bounty(amount="9.00")
    requests = 150
    with gunicorn_server(tmp_path, RATELIMIT_ENABLE="0", GUNICORN_MAX_REQUESTS="20") as server:
        url = f"{server.url}/api/bounties/{bounty.pk}"
        for _ in range(requests):
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our http URL)
                assert response.status == 200
        time.sleep(1)  # the last replaced worker's exit is handled
        body = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()  # noqa: S310
        counter_files = sorted(path.name for path in server.metrics_dir.glob("counter_*.db"))
        restarts = server.log.read_text().count("Booting worker")

    families = {family.name: family for family in text_string_to_metric_families(body)}
    assert restarts >= 2 + 5  # two workers, then at least five replacements
    assert "counter_archive.db" in counter_files
    assert len(counter_files) <= 3, counter_files  # the archive and the two live workers
    assert (
        value(families, "http_requests", "_total", route="/api/bounties/{id}", status_code="2xx") == requests
    )
    assert value(families, "http_request_duration_ms", "_count", route="/api/bounties/{id}") == requests

"""The connection pool page: what every gunicorn worker publishes, the totals, the history,
and PostgreSQL's own view of the connections."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import Client
from django_redis import get_redis_connection

from perf.monitor import pool
from perf.monitor.db import APPLICATION_NAME
from perf.monitor.pages import Level
from tests.conftest import connections_held, gunicorn_server
from tests.factories import UserFactory

URL = "/admin/perf/connectionpool/"


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    return client


def page(client: Client):
    response = client.get(URL)
    assert response.status_code == 200, response.content[:2000]
    return response


def status_of(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our local http URL)
        return response.status


def rows_by_pid(response) -> dict[int, dict]:
    return {row["worker"].pid: row for row in response.context["rows"]}


@pytest.mark.django_db
def test_the_pool_page_is_refused_to_non_staff_and_sends_anonymous_users_to_login():
    anonymous = Client().get(URL)
    member = Client()
    member.force_login(UserFactory(is_staff=False))

    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert member.get(URL).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_two_gunicorn_workers_both_show_with_their_stats_and_vanish_after_the_expiry(tmp_path, staff_client):
    # gunicorn_server starts two workers (GUNICORN_WORKERS=2 is its own default, not overridable).
    with gunicorn_server(tmp_path, PERF_POOL_PUBLISH_SECONDS="1") as server:
        # A different page size each: every request misses the cache and queries PostgreSQL.
        urls = [f"{server.url}/api/bounties?limit={size}" for size in range(1, 41)]
        with ThreadPoolExecutor(max_workers=8) as executor:
            statuses = list(executor.map(status_of, urls))
        assert statuses == [200] * 40
        deadline = time.monotonic() + 10
        while True:
            response = page(staff_client)
            workers = {pid: row for pid, row in rows_by_pid(response).items() if pid != os.getpid()}
            served = sum(row["worker"].stats["requests_num"] for row in workers.values())
            if (len(workers) == 2 and served >= 40) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        worker_pids = set(workers)

        assert len(worker_pids) == 2, response.context["rows"]
        for row in workers.values():
            stats = row["worker"].stats
            assert stats["pool_max"] == 20 and stats["pool_min"] == 1  # DATABASE_POOL_MAX, _MIN
            assert row["worker"].age_seconds < 3
            assert f'data-pid="{row["worker"].pid}"' in response.content.decode()
        assert response.context["totals"].pool_size >= 1  # opened by the requests
        assert served >= 40  # every API request checked a connection out of some worker's pool
        assert response.context["totals"].workers == 2
        assert response.context["totals"].pool_max == 40
        assert response.context["history_chart"] is not None  # samples already in the history
        assert "not published" not in server.log.read_text()

    # Stopped: their keys expire after 3 publishing periods (3 s) and they leave the page.
    deadline = time.monotonic() + 10
    while worker_pids & set(rows_by_pid(page(staff_client))) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not worker_pids & set(rows_by_pid(page(staff_client)))
    assert pool.pool_summary()["workers"] == 0


@pytest.mark.django_db(transaction=True)
def test_pool_numbers_move_while_connections_are_held_and_come_back_when_released(staff_client):
    assert connections["default"].pool is not None
    pool.publish_once()
    before = rows_by_pid(page(staff_client))[os.getpid()]

    with connections_held(3):
        pool.publish_once()
        held = page(staff_client)
    pool.publish_once()
    after = rows_by_pid(page(staff_client))[os.getpid()]

    during = rows_by_pid(held)[os.getpid()]
    assert during["in_use"] == before["in_use"] + 3
    assert during["worker"].stats["requests_num"] >= before["worker"].stats["requests_num"] + 3
    assert after["in_use"] == before["in_use"]
    assert during["worker"].stats["pool_available"] <= during["worker"].stats["pool_size"] - 3


@pytest.mark.django_db(transaction=True)
def test_pg_stat_activity_is_grouped_by_state_and_by_application(staff_client):
    response = page(staff_client)
    activity = response.context["activity"]
    states = {row["state"]: row["connections"] for row in activity["by_state"].rows}
    applications = {row["application"]: row for row in activity["by_application"].rows}

    assert activity["by_state"].ok and activity["by_application"].ok
    assert states.get("active", 0) >= 1  # the monitor's own query, at least
    assert applications[APPLICATION_NAME]["active"] >= 1
    assert "bountyexpo" in applications  # the test's own pooled connections
    totals = activity["totals"].first()
    assert totals["max_connections"] > totals["client_connections"] >= 2
    assert "By application" in response.content.decode()


def test_history_keeps_its_window_and_its_cap(settings, monkeypatch):
    settings.PERF_POOL_PUBLISH_SECONDS = 10
    settings.PERF_POOL_HISTORY_MINUTES = 1
    redis = get_redis_connection("default")
    now = time.time()

    pool.publish_once(now=now - 3600)  # an hour old: trimmed by the next publish
    pool.publish_once(now=now - 30)
    kept = [json.loads(member)["time"] for member in redis.zrange(pool.history_key(), 0, -1)]
    assert kept == [round(now - 30, 3)]

    monkeypatch.setattr(pool, "HISTORY_MAX_WORKERS", 1)  # (60 s / 10 s + 1) x 1 = 7 samples at most
    for second in range(20):
        pool.publish_once(now=now - 20 + second)
    assert redis.zcard(pool.history_key()) == 7  # the newest seven, all inside the window
    assert min(sample["time"] for sample in pool.read_history(now=now)) == round(now - 7, 3)
    assert 0 < redis.ttl(pool.history_key()) <= 60
    assert 0 < redis.ttl(pool.worker_key(pool.worker_id())) <= 30


def test_history_rates_come_from_each_workers_differences(settings):
    settings.PERF_POOL_PUBLISH_SECONDS = 60
    settings.PERF_POOL_HISTORY_MINUTES = 10  # ten buckets of a minute
    now = 10_000.0

    def sample(worker: str, t: float, requests: int, in_use: int) -> dict:
        return {
            "worker": worker, "time": t, "pool_size": 5, "pool_available": 5 - in_use,
            "requests_waiting": 0, "requests_num": requests, "requests_queued": 0, "requests_wait_ms": 0,
            "requests_errors": 0, "connections_errors": 0, "connections_lost": 0,
        }  # fmt: skip

    samples = [
        sample("a:1", now - 150, 1000, 1),
        sample("a:1", now - 90, 1600, 2),  # +600 in a minute: 10/s
        sample("b:2", now - 100, 50, 3),  # a second worker's first sample: no rate yet
        sample("b:2", now - 30, 170, 4),  # +120: 2/s, in the last bucket
    ]
    history = pool.bucket_history(samples, now=now)

    assert len(history.requests_per_s) == 10
    assert history.requests_per_s[-2] == pytest.approx(10)
    assert history.requests_per_s[-1] == pytest.approx(2)
    assert history.in_use[-2] == 2 + 3 and history.in_use[-1] == 4
    assert history.requests_per_s[0] is None  # no sample: a gap, not a zero


def test_the_summary_is_judged_by_the_busiest_worker(settings):
    redis = get_redis_connection("default")
    now = time.time()
    for pid, (size, available) in {101: (20, 19), 102: (20, 1)}.items():
        record = {
            "worker": f"h:{pid}", "host": "h", "pid": pid, "time": now, "period": 5,
            "stats": {"pool_min": 5, "pool_max": 20, "pool_size": size, "pool_available": available},
        }  # fmt: skip
        redis.set(pool.worker_key(f"h:{pid}"), json.dumps(record), ex=15)
        redis.zadd(pool.index_key(), {f"h:{pid}": now + 15})

    summary = pool.pool_summary()

    assert summary == {
        "workers": 2, "size": 40, "in_use": 20, "available": 20, "waiting": 0, "max": 40,
        "utilisation_pct": 50.0, "level": Level.CRITICAL, "error": None,
    }  # fmt: skip


def test_without_published_workers_the_summary_is_grey_not_green():
    summary = pool.pool_summary()

    assert (summary["workers"], summary["level"], summary["utilisation_pct"]) == (0, Level.UNKNOWN, None)


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_page_renders_and_the_publisher_stays_quiet(own_redis, staff_client, caplog):
    publisher = pool._Publisher()
    publisher.publish()
    assert rows_by_pid(page(staff_client))  # up: this process is listed

    own_redis.stop()
    with caplog.at_level(logging.INFO, logger="bountyexpo.monitor"):
        for _ in range(3):
            publisher.publish()  # never raises
        response = page(staff_client)
        own_redis.start()
        publisher.publish()

    assert "Redis is unreachable" in response.content.decode()
    assert response.context["rows"] == []
    assert response.context["activity"]["by_state"].ok  # PostgreSQL's side still shows
    assert pool.pool_summary()["workers"] == 1
    messages = [record.getMessage() for record in caplog.records if record.name == "bountyexpo.monitor"]
    assert len([m for m in messages if "not published" in m]) == 1  # once per outage, not per period
    assert messages[-1] == "pool statistics published again"

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, close_old_connections, connection, transaction
from django.test import Client

from tests.conftest import assert_error

LIST = "/api/bounties?limit=1"


@pytest.mark.django_db(transaction=True)
def test_requests_take_connections_from_the_psycopg_pool_and_return_them():
    pool = connection.pool
    assert pool is not None, "OPTIONS['pool'] is not in effect"
    stats = pool.get_stats()
    assert (stats["pool_min"], stats["pool_max"]) == (settings.DATABASE_POOL_MIN, settings.DATABASE_POOL_MAX)
    served_before = stats.get("requests_num", 0)

    def serve_one(_):
        # Each thread is a fresh Django connection, as in a gunicorn thread; it ends the request
        # the way Django's request_finished handler does, which gives the connection back.
        try:
            response = Client().get("/readyz")
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_database()")
                database = cursor.fetchone()[0]
            return response.status_code, database
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as executor:
        results = list(executor.map(serve_one, range(8)))

    assert results == [(200, connection.settings_dict["NAME"])] * 8
    after = pool.get_stats()
    assert after["requests_num"] - served_before >= 8
    assert after.get("requests_waiting", 0) == 0
    assert 1 <= after["pool_size"] <= settings.DATABASE_POOL_MAX
    close_old_connections()


@pytest.mark.django_db
def test_every_pooled_connection_carries_the_statement_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == f"{settings.DATABASE_STATEMENT_TIMEOUT_MS // 1000}s"
        cursor.execute("SELECT current_setting('application_name')")
        assert cursor.fetchone()[0] == "bountyexpo"


@pytest.mark.django_db
def test_statement_timeout_cancels_a_query_longer_than_ten_seconds():
    assert settings.DATABASE_STATEMENT_TIMEOUT_MS == 10_000

    with pytest.raises(OperationalError) as excinfo, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(11)")

    assert isinstance(excinfo.value.__cause__, psycopg.errors.QueryCanceled)
    assert "statement timeout" in str(excinfo.value)
    with connection.cursor() as cursor:  # the connection is still usable afterwards
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db
def test_pg_stat_statements_is_installed_and_recording():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_statements")
        assert cursor.fetchone()[0] > 0
        cursor.execute("SHOW log_min_duration_statement")
        assert cursor.fetchone()[0] == "100ms"


# --- the database cannot serve: 503 with Retry-After, never 500 --------------------------------


@pytest.mark.django_db
@pytest.mark.urls("tests.core.urls_errors")
@pytest.mark.parametrize("path", ["/test/slow-query", "/test/slow-query-plain"])
def test_a_statement_timeout_is_503_query_timeout_inside_and_outside_drf(path):
    response = Client(raise_request_exception=False).get(path)

    assert_error(response, 503, "query_timeout")
    assert response["Retry-After"] == str(settings.DATABASE_RETRY_SECONDS)


def hold_every_connection(release: threading.Event) -> tuple[ThreadPoolExecutor, threading.Barrier]:
    """Threads that each check a connection out of the pool and keep it until ``release``."""
    holders = settings.DATABASE_POOL_MAX
    held = threading.Barrier(holders + 1)

    def hold(_):
        try:
            connection.ensure_connection()
            held.wait()
            release.wait(timeout=30)
        finally:
            connection.close()

    executor = ThreadPoolExecutor(max_workers=holders + 1)
    for index in range(holders):
        executor.submit(hold, index)
    return executor, held


def request_in_a_thread(path: str):
    def one():
        try:
            started = time.monotonic()
            return Client().get(path), time.monotonic() - started
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(one).result()


@pytest.mark.django_db(transaction=True)
def test_an_exhausted_pool_answers_503_database_busy_after_its_wait(monkeypatch, settings):
    settings.CACHE_TTL_BOUNTY_LIST = 0  # the list must reach PostgreSQL
    release = threading.Event()
    executor, held = hold_every_connection(release)
    try:
        held.wait(timeout=30)
        # Only now: the holders themselves wait while the pool grows (longer on a busy machine).
        monkeypatch.setattr(connection.pool, "timeout", 0.3)

        response, seconds = request_in_a_thread(LIST)
    finally:
        release.set()
        executor.shutdown()

    assert_error(response, 503, "database_busy")
    assert response["Retry-After"] == str(settings.DATABASE_RETRY_SECONDS)
    assert seconds < 3
    assert request_in_a_thread(LIST)[0].status_code == 200  # the pool serves again at once


@pytest.mark.django_db(transaction=True)
def test_past_max_waiting_a_request_is_refused_at_once(monkeypatch, settings):
    settings.CACHE_TTL_BOUNTY_LIST = 0
    release = threading.Event()
    executor, held = hold_every_connection(release)
    try:
        held.wait(timeout=30)
        # Only now: holders queued while the pool grows would count as waiting requests.
        monkeypatch.setattr(connection.pool, "max_waiting", 1)
        queued = executor.submit(request_in_a_thread, LIST)  # the one request allowed to wait
        time.sleep(0.3)

        response, seconds = request_in_a_thread(LIST)
        release.set()
        assert queued.result()[0].status_code == 200
    finally:
        release.set()
        executor.shutdown()

    assert_error(response, 503, "database_busy")
    assert seconds < 1

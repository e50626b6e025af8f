from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, close_old_connections, connection, transaction
from django.test import Client


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

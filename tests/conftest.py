"""Shared fixtures. Tests run against the real PostgreSQL and Redis started by `make test`.

PostgreSQL: pytest-django creates and migrates `test_<name>`. Redis: the tests use their own
database number (TEST_REDIS_DB, default 15), emptied after every test, so a developer's
cache in database 0 is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test.utils import override_settings
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from accounts.services import token_issue
from core import response_cache
from core.db import availability
from perf.loadtest.chaos.harness import RedisServer, free_port
from tests.factories import UserFactory, paid_bounty
from wallet.selectors import ledger_check


def _redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session", autouse=True)
def _test_settings():
    test_caches = {
        alias: {
            **config,
            "LOCATION": _redis_url_with_db(config["LOCATION"], int(os.environ.get("TEST_REDIS_DB", 15))),
        }
        for alias, config in settings.CACHES.items()
    }
    # A fast hasher: real PBKDF2 costs ~0.3 s per password and adds nothing to these tests.
    with override_settings(
        CACHES=test_caches,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        # Tests make many requests as one client within a minute; tests/core/test_ratelimit.py
        # sets the real tiers back where limits are what is tested.
        RATE_LIMITS={tier: "100000/m" for tier in settings.RATE_LIMITS},
        # An invalidated entry is never served, so a test of who-invalidates-what sees every
        # write at once, whoever reads; tests/core/test_freshness.py sets the public lag back
        # and tests the contract itself (live servers run with the production default).
        CACHE_PUBLIC_LAG_SECONDS=0,
        # The manifest storage needs `collectstatic` first (make run does it); tests do not run it.
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        yield


@pytest.fixture(autouse=True)
def _empty_redis():
    yield
    get_redis_connection("default").flushdb()
    response_cache.retry_redis_now()  # a test that stopped Redis must not slow the next one
    availability.reset()  # nor one that made the database look unreachable


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Runs the on-commit callbacks of the writes made inside it, as a real commit would:
    the test transaction never commits, and cache invalidation happens on commit."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def anonymous(api_client):
    """An anonymous client: the one every cached public read is shared with."""
    return api_client


@pytest.fixture
def bounty(db):
    """A paid bounty of 40.00 whose title the search URL of tests.caching.cached_urls finds."""
    return paid_bounty(title="Design a logo for a bakery", amount="40.00")


@pytest.fixture
def user(db):
    return UserFactory()


def client_for(user) -> APIClient:
    """An API client authenticated as ``user`` with a fresh bearer token."""
    raw, _ = token_issue(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.token = raw
    return client


@pytest.fixture
def user_client(user) -> APIClient:
    return client_for(user)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """Assert the one error shape and return its ``error`` object."""
    assert response.status_code == status, response.content
    body = response.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def reads_after_insert(queries, table: str, *read_tables: str) -> list[str]:
    """The SELECTs reading ``table`` or any of ``read_tables`` that ran after the INSERT INTO
    ``table`` among ``queries`` (a CaptureQueriesContext, which must hold that INSERT): a write
    that answers from the row it inserted runs none."""
    sqls = [query["sql"] for query in queries]
    inserts = [i for i, sql in enumerate(sqls) if sql.startswith(f'INSERT INTO "{table}"')]
    assert inserts, f"no INSERT INTO {table} among the captured queries"
    names = [f'"{name}"' for name in (table, *read_tables)]
    return [sql for sql in sqls[inserts[0] :] if sql.startswith("SELECT") and any(n in sql for n in names)]


def run_together(count: int, work: Callable[[int], object]) -> list[object]:
    """Run ``work(i)`` in ``count`` threads released at the same instant; returns results or
    the exceptions raised."""
    barrier = threading.Barrier(count)

    def one(i: int):
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:  # collected for the assertions
            return exc
        finally:
            connection.close()  # give the thread's connection back to the pool

    with ThreadPoolExecutor(max_workers=count) as executor:
        return list(executor.map(one, range(count)))


@pytest.fixture
def patient_pool(monkeypatch):
    """A fresh ``default`` pool whose connections wait up to 60 s for a free connection and run
    statements up to 60 s, for tests that release hundreds of threads of one Python process on a
    few rows: there the lock queue measures this process's GIL on the machine at hand, not the
    API (CI's busier machine turned the 10 s statement_timeout into a failure). The API's own
    timeouts are tested in tests/core/test_database.py."""
    options = connection.settings_dict["OPTIONS"]
    connection.close()
    connection.close_pool()  # its connections carry the configured statement_timeout
    monkeypatch.setitem(options, "pool", {**options["pool"], "timeout": 60.0})
    if "options" in options:  # behind PgBouncer the timeout is PgBouncer's, not the app's
        monkeypatch.setitem(options, "options", "-c statement_timeout=60000")
    yield
    connection.close()
    connection.close_pool()  # the next connection opens a pool with the settings restored


def ledger_is_consistent() -> bool:
    return ledger_check().ok


@pytest.fixture
def own_redis(tmp_path):
    """A real, throwaway redis-server the test may stop and start again on its port."""
    server = RedisServer(tmp_path)
    server.start()
    caches = {alias: {**config, "LOCATION": server.url} for alias, config in settings.CACHES.items()}
    try:
        with override_settings(CACHES=caches):
            yield server
    finally:
        server.stop()


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a server or command in a subprocess that uses the test database and
    the tests' Redis database."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.CACHES["default"]["LOCATION"],
        "DATABASE_POOL_MIN": "1",
        **extra,
    }


@contextmanager
def connections_held(count: int):
    """``count`` threads each hold a connection checked out of this process's pool until the
    block ends; then they give them back and are joined."""
    release, ready = threading.Event(), threading.Barrier(count + 1)

    def hold() -> None:
        connections["default"].ensure_connection()
        ready.wait()
        release.wait(timeout=30)
        connections["default"].close()  # back to the pool

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for thread in threads:
        thread.start()
    ready.wait()
    try:
        yield
    finally:
        release.set()
        for thread in threads:
            thread.join()


@contextmanager
def gunicorn_server(tmp_path, **env: str):
    """A real gunicorn (deploy/gunicorn.conf.py) on a free port over the test database;
    yields it once /readyz answers (``url``, and ``log``: its output), stops it afterwards."""
    port = free_port()
    folder = tmp_path / f"gunicorn-{port}"
    folder.mkdir()
    defaults = {
        "BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_PIDFILE": str(folder / "g.pid"),
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics"),
    }
    server_env = subprocess_env(**{**defaults, **env})
    log = folder / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "bountyexpo.wsgi"],
            cwd=settings.BASE_DIR, env=server_env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/readyz", timeout=2).read()  # noqa: S310 (our http URL)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"gunicorn did not become ready:\n{log.read_text()}") from None
                time.sleep(0.3)
        server.url = url
        server.log = log
        server.metrics_dir = Path(server_env["PROMETHEUS_MULTIPROC_DIR"])
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.conftest import free_port

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_any_dependency(api_client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = api_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_both_dependencies_ok(api_client):
    response = api_client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_503_naming_redis_while_it_is_down_and_recovers(api_client, own_redis):
    assert api_client.get("/readyz").status_code == 200

    own_redis.stop()
    down = api_client.get("/readyz")

    assert down.status_code == 503
    error = down.json()["error"]
    assert error["code"] == "not_ready"
    assert "redis" in error["message"]
    assert set(error["fields"]) == {"redis"}

    own_redis.start()
    assert api_client.get("/readyz").status_code == 200


def test_readyz_is_503_naming_the_database_when_it_is_unreachable():
    # A separate process: the pool is per process and this one's points at the test database.
    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "r = Client().get('/readyz')\n"
        "print(r.status_code, r.content.decode())\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bountyexpo.settings",
        "DATABASE_URL": f"postgres://nobody:x@127.0.0.1:{free_port()}/none",
        "DATABASE_CONNECT_TIMEOUT": "1",
        "ALLOWED_HOSTS": "testserver",
        "REDIS_URL": settings.CACHES["default"]["LOCATION"],
        "POOL_LOG_LEVEL": "CRITICAL",
    }
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().split(" ", 1)
    assert status == "503"
    assert '"database"' in body
    assert '"redis"' not in body
    assert "database unreachable" in body

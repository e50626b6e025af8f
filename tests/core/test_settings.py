"""Start-up configuration: each case runs Django in a fresh process, as a deploy would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_int, env_list

BASE_ENV = {
    "PATH": os.environ.get("PATH", ""),
    "DJANGO_SETTINGS_MODULE": "bountyexpo.settings",
    "BOUNTYEXPO_ENV_FILE": os.devnull,  # ignore the developer's .local/env
}


def start_django(code: str = "", **env: str) -> subprocess.CompletedProcess:
    script = "import django; django.setup()\n" + code
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env={**BASE_ENV, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_with_debug_off_refuses_to_start_with_a_clear_message():
    result = start_django(DEBUG="0")

    assert result.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is off" in result.stderr


def test_empty_secret_key_counts_as_missing():
    result = start_django(DEBUG="false", SECRET_KEY="")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_on_starts_without_secret_key():
    result = start_django("from django.conf import settings; print(settings.DEBUG)", DEBUG="1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_secret_key_with_debug_off_starts_and_reads_pool_settings():
    code = (
        "from django.conf import settings\n"
        "db = settings.DATABASES['default']\n"
        "print(db['OPTIONS']['pool']['min_size'], db['OPTIONS']['pool']['max_size'], "
        "db['OPTIONS']['pool']['max_idle'], db['OPTIONS']['options'], db['CONN_MAX_AGE'])"
    )
    result = start_django(
        code,
        SECRET_KEY="s" * 50,
        DATABASE_POOL_MIN="2",
        DATABASE_POOL_MAX="7",
        DATABASE_STATEMENT_TIMEOUT_MS="2500",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "7", "30.0", "-c", "statement_timeout=2500", "0"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_POOL_MAX": "lots"}, "DATABASE_POOL_MAX must be an integer"),
        ({"DATABASE_POOL_MIN": "9", "DATABASE_POOL_MAX": "3"}, "cannot exceed DATABASE_POOL_MAX"),
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        ({"DATABASE_URL": "sqlite:///db.sqlite3"}, "DATABASE_URL must point at PostgreSQL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be 'text' or 'json'"),
    ],
)
def test_invalid_values_refuse_to_start_naming_the_variable(env, message):
    result = start_django(SECRET_KEY="s" * 50, **env)

    assert result.returncode != 0
    assert message in result.stderr


def test_json_log_format_writes_one_json_object_per_line():
    code = "import logging; logging.getLogger('bountyexpo.probe').warning('hello %s', 'world')"
    result = start_django(code, SECRET_KEY="s" * 50, LOG_FORMAT="json")

    assert result.returncode == 0, result.stderr
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["level"] == "WARNING"
    assert record["logger"] == "bountyexpo.probe"
    assert record["message"] == "hello world"
    assert record["request_id"] == "-"
    assert "time" in record


def test_env_helpers_parse_and_reject(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", "0")
    monkeypatch.setenv("X_LIST", " a.example, ,b.example ")

    assert env_bool("X_BOOL") is True
    assert env_bool("X_UNSET", True) is True
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    with pytest.raises(ImproperlyConfigured, match="X_INT must be at least 1"):
        env_int("X_INT", 5, minimum=1)


def test_rate_limits_and_cache_ttls_come_from_the_environment():
    code = (
        "from django.conf import settings\n"
        "print(settings.RATE_LIMITS['search'], settings.RATE_LIMITS['auth'], settings.RATE_LIMITS['list'], "
        "settings.CACHE_TTL_BOUNTY_DETAIL, settings.RATELIMIT_FAIL_OPEN, settings.TRUSTED_PROXY_COUNT)"
    )
    result = start_django(
        code, DEBUG="1", RATELIMIT_SEARCH="40/m", RATELIMIT_AUTH="3/1h", CACHE_TTL_BOUNTY_DETAIL="0",
        RATELIMIT_FAIL_OPEN="0", TRUSTED_PROXY_COUNT="2",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["40/m", "3/1h", "60/m", "0", "False", "2"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RATELIMIT_SEARCH", "twenty", "RATELIMIT_SEARCH='twenty': expected e.g. 20/m or 5/15m."),
        ("RATELIMIT_MONEY", "0/m", "RATELIMIT_MONEY='0/m'"),
        ("CACHE_TTL_SEARCH", "-1", "CACHE_TTL_SEARCH"),
    ],
)
def test_bad_rate_limits_and_ttls_refuse_to_start(name, value, message):
    result = start_django(DEBUG="1", **{name: value})

    assert result.returncode != 0
    assert message in result.stderr


def test_production_security_settings_pass_check_deploy():
    production = {
        "SECRET_KEY": "s" * 60 + "-production-secret-key-of-enough-variety-123",
        "ALLOWED_HOSTS": "api.example.com",
        "SECURE_COOKIES": "1",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
        "SECURE_HSTS_PRELOAD": "1",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env={**BASE_ENV, **production}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_allowed_cidr_nets_accept_a_pod_address_as_host_and_nothing_else():
    code = (
        "from django.test import Client\n"
        "c = Client()\n"
        "hosts = ['10.1.2.3:8000', 'api.example.com', '192.168.1.1', 'evil.example.com',"
        " '10.0.0.1.evil.com']\n"
        "for host in hosts:\n"
        "    print(host, c.get('/healthz', HTTP_HOST=host).status_code)"
    )
    result = start_django(
        code, SECRET_KEY="s" * 50, ALLOWED_HOSTS="api.example.com", ALLOWED_CIDR_NETS="10.0.0.0/8"
    )

    assert result.returncode == 0, result.stderr
    assert dict(line.split() for line in result.stdout.splitlines()) == {
        "10.1.2.3:8000": "200",
        "api.example.com": "200",
        "192.168.1.1": "400",
        "evil.example.com": "400",
        "10.0.0.1.evil.com": "400",
    }


def test_a_bad_allowed_cidr_net_refuses_to_start():
    result = start_django(SECRET_KEY="s" * 50, ALLOWED_CIDR_NETS="10.0.0.0/8,ten-net")

    assert result.returncode != 0
    assert "ALLOWED_CIDR_NETS: 'ten-net' is not a network" in result.stderr


def test_a_replica_that_is_not_postgresql_refuses_to_start():
    result = start_django(SECRET_KEY="s" * 50, DATABASE_REPLICA_URLS="postgres://a@h/db,sqlite:///replica.db")

    assert result.returncode != 0
    assert "DATABASE_REPLICA_URLS: replica 2 must be PostgreSQL" in result.stderr


def test_replicas_add_an_alias_each_the_router_and_its_middleware_and_nothing_without():
    code = (
        "from django.conf import settings\n"
        "print(sorted(settings.DATABASES), settings.DATABASE_ROUTERS,"
        " settings.MIDDLEWARE[-1].rsplit('.', 1)[-1])"
    )
    urls = "postgres://a:b@replica-one:5432/db,postgres://a:b@replica-two:5432/db"
    with_replicas = start_django(code, SECRET_KEY="s" * 50, DATABASE_REPLICA_URLS=urls)
    without = start_django(code, SECRET_KEY="s" * 50)

    assert with_replicas.returncode == 0, with_replicas.stderr
    assert with_replicas.stdout.split("] ", 1)[0] == "['default', 'replica_1', 'replica_2'"
    assert "core.db.replicas.PrimaryReplicaRouter" in with_replicas.stdout
    assert with_replicas.stdout.split()[-1] == "ReplicaMiddleware"
    assert without.stdout.split("] ", 1)[0] == "['default'"
    assert "[]" in without.stdout and without.stdout.split()[-1] != "ReplicaMiddleware"


def test_pgbouncer_without_a_direct_url_refuses_to_start():
    result = start_django(SECRET_KEY="s" * 50, DATABASE_PGBOUNCER="1")

    assert result.returncode != 0
    assert "DATABASE_PGBOUNCER=1 needs DATABASE_DIRECT_URL" in result.stderr


def test_behind_pgbouncer_the_app_sends_no_startup_options_and_opens_no_server_side_cursors():
    code = (
        "import json\n"
        "from django.conf import settings\n"
        "from perf.monitor.db import connection_params\n"
        "d = settings.DATABASES\n"
        "monitor = connection_params()\n"
        "print(json.dumps({alias: [db['HOST'], db['OPTIONS'].get('options'), 'pool' in db['OPTIONS'],"
        " db.get('DISABLE_SERVER_SIDE_CURSORS', False)] for alias, db in d.items()}))\n"
        "print(json.dumps([monitor['host'], monitor['options']]))"
    )
    result = start_django(
        code,
        SECRET_KEY="s" * 50,
        DATABASE_STATEMENT_TIMEOUT_MS="4000",
        PERF_STATEMENT_TIMEOUT_MS="1500",
        DATABASE_PGBOUNCER="1",
        DATABASE_URL="postgres://a:b@pgbouncer:6432/db",
        DATABASE_DIRECT_URL="postgres://a:b@primary:5432/db",
        DATABASE_REPLICA_URLS="postgres://a:b@replica:5432/db",
    )

    assert result.returncode == 0, result.stderr
    aliases, monitor = (json.loads(line) for line in result.stdout.splitlines())
    timeout = "-c statement_timeout=4000"
    assert aliases == {
        "default": ["pgbouncer", None, True, True],  # the timeout is PgBouncer's connect_query
        "direct": ["primary", timeout, False, False],  # no pool: only the monitor reads it
        "replica_1": ["replica", timeout, True, False],  # replicas are reached directly
    }
    assert monitor == ["primary", "-c statement_timeout=1500"]


def test_https_redirect_leaves_the_probes_on_plain_http():
    code = (
        "from django.test import Client\n"
        "c = Client()\n"
        "print(c.get('/healthz').status_code, c.get('/api/bounties').status_code)"
    )
    result = start_django(code, SECRET_KEY="s" * 50, SECURE_SSL_REDIRECT="1", ALLOWED_HOSTS="testserver")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "301"]

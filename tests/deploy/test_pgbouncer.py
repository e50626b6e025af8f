"""PgBouncer in transaction mode in front of the suite's PostgreSQL (Debian's pgbouncer, with
deploy/pgbouncer/pgbouncer.ini rendered by deploy/render_pgbouncer.py), and part of the suite
run through it with DATABASE_PGBOUNCER=1.

Its server pool is kept at 3 connections, so that the tests' many client connections (every
thread's pool checkout) take turns on a few server sessions: any state one client left on a
session (a SET, a prepared statement, a server-side cursor, a temporary table) would meet
another client there."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from perf.loadtest.chaos.harness import PgBouncer
from tests.conftest import subprocess_env

SERVER_POOL = 3
# What runs through PgBouncer: the API's reads, writes and money paths, races on rows and
# advisory locks, Idempotency-Key replays, search, conversations, the statement timeout and
# its 503, the pool, maintenance SQL (check_ledger) and the perf monitor's direct connection.
THROUGH_PGBOUNCER = [
    "tests/accounts/test_auth.py",
    "tests/bounties/test_bounties_api.py",
    "tests/bounties/test_requests.py",
    "tests/bounties/test_search.py",
    "tests/bounties/test_status_flow.py",
    "tests/core/test_database.py",
    "tests/core/test_idempotency.py",
    "tests/messaging/test_conversations.py",
    "tests/perf/monitor/test_foundations.py",
    "tests/wallet/test_check_ledger.py",
    "tests/wallet/test_concurrency.py",
    "tests/wallet/test_wallet_api.py",
]
# The database name of the inner run: its test database (test_bx_pgbouncer) is not the outer
# run's, and its Redis database is another one too.
INNER_DB = "bx_pgbouncer"
INNER_REDIS_DB = "14"


def server_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}"


@pytest.fixture(scope="module")
def pgbouncer(tmp_path_factory):
    bouncer = PgBouncer(
        tmp_path_factory.mktemp("pgbouncer"),
        server=server_url(),
        statement_timeout_ms=settings.DATABASE_STATEMENT_TIMEOUT_MS,
        pool_size=SERVER_POOL,
    )
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.mark.django_db
def test_each_server_connection_starts_with_the_api_statement_timeout(pgbouncer):
    url = pgbouncer.url(connection.settings_dict["NAME"])
    backends = set()
    for _ in range(SERVER_POOL + 2):  # more clients than server connections
        with psycopg.connect(url, autocommit=True, application_name="pgbouncer-test") as conn:
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "10s"
            assert conn.execute("SHOW application_name").fetchone()[0] == "pgbouncer-test"
            assert conn.execute("SELECT current_database()").fetchone()[0] == connection.settings_dict["NAME"]
            backends.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
    assert 1 <= len(backends) <= SERVER_POOL

    # Why the app sends no statement timeout of its own behind PgBouncer:
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(url, options="-c statement_timeout=1000").close()


@pytest.mark.django_db
def test_a_session_level_set_follows_the_server_connection_to_the_next_client(pgbouncer):
    """The hazard the app avoids (core/db/maintenance.py uses SET LOCAL): with one server
    connection, a client's session-level SET is what the next client gets."""
    url = pgbouncer.url(connection.settings_dict["NAME"])
    with psycopg.connect(url, autocommit=True) as first, psycopg.connect(url, autocommit=True) as second:
        first.execute("SET work_mem = '7MB'")
        seen = {second.execute("SHOW work_mem").fetchone()[0] for _ in range(20)}
        first.execute("BEGIN")
        first.execute("SET LOCAL work_mem = '9MB'")
        first.execute("COMMIT")
        after_local = {second.execute("SHOW work_mem").fetchone()[0] for _ in range(20)}
        first.execute("RESET work_mem")
    assert "7MB" in seen  # the leak (some server connection carries it)
    assert "9MB" not in after_local  # SET LOCAL ended with its transaction


def test_part_of_the_suite_passes_through_pgbouncer_in_transaction_mode(pgbouncer, tmp_path):
    direct = f"{server_url()}/{INNER_DB}"
    env = subprocess_env(
        DATABASE_URL=pgbouncer.url(INNER_DB),
        DATABASE_PGBOUNCER="1",
        DATABASE_DIRECT_URL=direct,
        TEST_REDIS_DB=INNER_REDIS_DB,
        BOUNTYEXPO_ENV_FILE=os.devnull,
    )
    env.pop("DATABASE_POOL_MIN")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *THROUGH_PGBOUNCER]
    result = subprocess.run(
        command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"\nthrough PgBouncer ({SERVER_POOL} server connections): {summary}")

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in summary and "skipped" not in summary
    # The inner run's database was reached through PgBouncer, not around it.
    assert f"registered new auto-database: db=test_{INNER_DB}" in pgbouncer.log.read_text()

"""core/management/base.py: the commands that use the app's tables stop with one line on a
database that is not migrated or not reachable, instead of a traceback from their first query."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import free_port, subprocess_env

COMMANDS = [
    ["seed_data", "--users", "2", "--bounties", "2", "--tokens", "1"],
    ["load_demo"],
    ["warm_cache"],
    ["check_ledger"],
    ["purge_idempotency_keys"],
    ["perf_snapshot"],
    # a run named by its id needs the database before the server is even asked
    ["loadtest", "baseline", "--compare", "3", "--host", "http://127.0.0.1:9"],
]


def command_error(result: subprocess.CompletedProcess) -> str:
    """The command's one error line (the pool's background thread may log after it)."""
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("CommandError: ")]
    return line


def manage(*args: str, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=subprocess_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )


def url_of(name: str, port: int | None = None) -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{port or db['PORT']}/{name}"


@pytest.fixture(scope="module")
def empty_database(django_db_blocker):
    """A database on the test cluster that nobody has migrated."""
    name = f"{connection.settings_dict['NAME']}_unmigrated"
    with django_db_blocker.unblock(), psycopg.connect(url_of("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield url_of(name)
    with django_db_blocker.unblock(), psycopg.connect(url_of("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_an_unmigrated_database_gets_one_line_saying_run_migrate(empty_database, command):
    result = manage(*command, database_url=empty_database)

    assert result.returncode == 1
    line = command_error(result)
    assert line.startswith("CommandError: the database ") and "unapplied migration(s)" in line
    assert line.endswith("run `python manage.py migrate` first.")


def test_an_unreachable_database_gets_one_line_saying_where_it_looked():
    result = manage("check_ledger", database_url=url_of("bountyexpo", port=free_port()))

    assert result.returncode == 1
    line = command_error(result)
    assert line.startswith("CommandError: cannot reach the database 127.0.0.1:")
    assert "Is PostgreSQL running" in line


def test_help_needs_no_database():
    result = manage("seed_data", "--help", database_url=url_of("bountyexpo", port=free_port()))

    assert result.returncode == 0
    assert "--reset" in result.stdout

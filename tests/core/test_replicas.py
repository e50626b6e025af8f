"""Reads on a real streaming replica (core/db/replicas.py).

The module makes a hot standby of the suite's own PostgreSQL with ``pg_basebackup -R`` (the test
database included), starts it on a free port and runs gunicorn with ``DATABASE_REPLICA_URLS``
pointing at it. Where a read ran is read from the servers' own pg_stat_statements; lag is made
by pausing the standby's replay (``pg_wal_replay_pause``)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection, transaction

from accounts.services import token_issue
from bounties.models import Bounty
from core.db import replicas
from messaging.services import conversation_open, message_send
from perf.loadtest.chaos.harness import free_port, wait_until
from tests.conftest import gunicorn_server
from tests.factories import bounty_data, funded_user, paid_bounty
from wallet.models import WalletTransaction

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(settings.BASE_DIR)
# Calls of this database's statements whose text matches, on the server asked.
CALLS_SQL = """
SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
WHERE query LIKE %s AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def pg_bin(name: str) -> str:
    bindir = subprocess.run(
        [str(ROOT / "deploy" / "bootstrap.sh"), "pg-bindir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(bindir) / name)


class Standby:
    def __init__(self, data: Path, port: int, log: Path):
        self.data, self.port, self.log = data, port, log
        db = settings.DATABASES["default"]
        self.dbname = connection.settings_dict["NAME"]
        self.url = f"postgres://{db['USER']}:{db['PASSWORD']}@127.0.0.1:{port}/{self.dbname}"

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url.replace("postgres://", "postgresql://"), autocommit=True)

    def start(self) -> None:
        subprocess.run(
            as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                         "-o", f"-p {self.port}", "start"]),
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        command = [pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
        subprocess.run(as_postgres(command), capture_output=True)

    def statement_calls(self, like: str) -> int:
        with self.connect() as conn:
            return conn.execute(CALLS_SQL, [like]).fetchone()[0]

    def wait_for(self, sql: str, params: list, timeout: float = 30) -> None:
        def seen() -> bool:
            with self.connect() as conn:
                return conn.execute(sql, params).fetchone()[0]

        wait_until(seen, timeout=timeout, interval=0.1, what=f"the standby seeing {sql} {params}")


def primary_calls(like: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(CALLS_SQL, [like])
        return cursor.fetchone()[0]


@pytest.fixture(scope="module")
def standby(django_db_setup, django_db_blocker):
    """A hot standby of the suite's cluster, test database included; removed afterwards."""
    db = settings.DATABASES["default"]
    # Outside /tmp/pytest-of-root (0700): the postgres user must reach its data folder.
    folder = Path(tempfile.mkdtemp(prefix="bx-standby-", dir="/var/tmp"))
    data = folder / "data"
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(folder, postgres.pw_uid, postgres.pw_gid)
    conninfo = f"host={db['HOST']} port={db['PORT']} user={db['USER']} password={db['PASSWORD']}"
    backup = subprocess.run(
        as_postgres([pg_bin("pg_basebackup"), "-d", conninfo, "-D", str(data), "-R", "-X", "stream",
                     "--checkpoint=fast"]),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert backup.returncode == 0, backup.stderr
    server = Standby(data, free_port(), folder / "standby.log")
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def replay(standby):
    """Pause and resume the standby's replay; always resumed afterwards."""

    class Replay:
        def pause(self):
            with standby.connect() as conn:
                conn.execute("SELECT pg_wal_replay_pause()")
            standby.wait_for("SELECT pg_get_wal_replay_pause_state() = 'paused'", [])

        def resume(self):
            with standby.connect() as conn:
                conn.execute("SELECT pg_wal_replay_resume()")

    control = Replay()
    yield control
    control.resume()


def server_env(standby, **env: str) -> dict[str, str]:
    return {
        "DATABASE_REPLICA_URLS": standby.url,
        "DATABASE_REPLICA_CHECK_SECONDS": "0.2",
        "RATELIMIT_ENABLE": "0",
        "GUNICORN_WORKERS": "1",
        **env,
    }


def bearer(user) -> dict[str, str]:
    raw, _ = token_issue(user=user)
    return {"Authorization": f"Bearer {raw}"}


def test_list_reads_run_on_the_replica_and_writes_on_the_primary(standby, tmp_path):
    owner = funded_user("1000.00")
    bounties = [paid_bounty(owner, amount="10.00", title=f"Paint fence number {n}") for n in range(3)]
    standby.wait_for("SELECT count(*) = 3 FROM bounties_bounty WHERE owner_id = %s", [owner.pk])
    like = '%FROM "bounties_bounty"%'

    # Background WAL anywhere on the cluster (autovacuum, checkpoints) can put the standby a few
    # milliseconds behind a cache miss: give it time to catch up, so every page routes there.
    with gunicorn_server(tmp_path, **server_env(standby, DATABASE_REPLICA_CATCH_UP_MS="2000")) as server:
        on_standby, on_primary = standby.statement_calls(like), primary_calls(like)
        for limit in range(1, 11):  # a page each: cache misses, computed
            response = requests.get(f"{server.url}/api/bounties", params={"limit": limit}, timeout=10)
            assert response.status_code == 200
            assert {row["id"] for row in response.json()["results"]} >= {bounties[-1].pk}
        created = requests.post(
            f"{server.url}/api/bounties", json=bounty_data(amount="5.00"), headers=bearer(owner), timeout=10
        )
        ready = requests.get(f"{server.url}/readyz", timeout=10).json()

    assert created.status_code == 201  # the write went to the primary (a standby refuses writes)
    assert standby.statement_calls(like) - on_standby >= 10
    # The primary ran none of the ten list pages (only the write's own reads and the cache's).
    assert primary_calls(like) - on_primary < 10
    assert ready["status"] == "ready" and ready["replicas"]["replica_1"].startswith("ok, lag")


def test_a_writer_reads_their_write_at_once_while_the_replica_lags_and_others_see_it_after(
    standby, replay, tmp_path
):
    """Messages are not cached: the other participant reads them from the replica."""
    author, other = funded_user("10.00"), funded_user("10.00")
    conversation, _ = conversation_open(created_by=author.pk, participant_ids={other.pk})
    standby.wait_for("SELECT count(*) = 1 FROM messaging_conversation WHERE id = %s", [conversation.pk])
    messages = f"/api/conversations/{conversation.pk}/messages"
    with gunicorn_server(tmp_path, **server_env(standby, DATABASE_REPLICA_MAX_LAG_SECONDS="600")) as server:
        requests.get(f"{server.url}/readyz", timeout=10)  # the replica is checked and in use
        replay.pause()
        sent = requests.post(
            f"{server.url}{messages}", json={"text": "On my way"}, headers=bearer(author), timeout=10
        )
        assert sent.status_code == 201, sent.text

        by_other = requests.get(f"{server.url}{messages}", headers=bearer(other), timeout=10)
        by_author = requests.get(f"{server.url}{messages}", headers=bearer(author), timeout=10)
        replay.resume()
        standby.wait_for("SELECT count(*) = 1 FROM messaging_message WHERE id = %s", [sent.json()["id"]])
        later = requests.get(f"{server.url}{messages}", headers=bearer(other), timeout=10)
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text

    assert [row["text"] for row in by_author.json()["results"]] == ["On my way"]  # read-your-writes
    assert by_other.json()["results"] == []  # the replica had not replayed it yet
    assert [row["text"] for row in later.json()["results"]] == ["On my way"]
    assert 'db_replica_fallbacks_total{reason="read_your_writes"}' in metrics


def test_a_page_to_cache_is_computed_where_every_write_that_moved_its_generation_is(
    standby, replay, tmp_path
):
    """A lagging replica must not fill the cache with a page that misses a write: the page is
    served as current until the next write. Such a miss is computed on the primary."""
    owner = funded_user("1000.00")
    # Strict invalidation (no stale answers within the public lag): the read after the write computes.
    env = server_env(standby, DATABASE_REPLICA_MAX_LAG_SECONDS="600", CACHE_PUBLIC_LAG_SECONDS="0")
    with gunicorn_server(tmp_path, **env) as server:
        requests.get(f"{server.url}/readyz", timeout=10)
        before = requests.get(f"{server.url}/api/bounties", params={"limit": 3}, timeout=10)
        replay.pause()
        created = requests.post(
            f"{server.url}/api/bounties", json=bounty_data(amount="5.00"), headers=bearer(owner), timeout=10
        )
        after = requests.get(f"{server.url}/api/bounties", params={"limit": 3}, timeout=10)  # anonymous
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text

    assert before.status_code == 200 and created.status_code == 201
    assert after.headers["X-Cache"] == "miss"
    assert after.json()["results"][0]["id"] == created.json()["id"]
    assert 'db_replica_fallbacks_total{reason="behind_cache"}' in metrics


def test_a_replica_lagging_past_the_limit_is_skipped_and_readyz_says_so(standby, replay, tmp_path):
    owner = funded_user("1000.00")
    env = server_env(standby, DATABASE_REPLICA_MAX_LAG_SECONDS="0.5")
    with gunicorn_server(tmp_path, **env) as server:
        replay.pause()
        bounty = paid_bounty(owner, amount="10.00", title="Mend a garden wall")  # pending on the standby
        time.sleep(1.0)  # past the lag limit and the check interval
        response = requests.get(f"{server.url}/api/bounties/{bounty.pk}", timeout=10)
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text

    assert response.status_code == 200  # the primary answered
    assert ready.status_code == 200 and ready.json()["replicas"]["replica_1"].startswith("skipped, lagging")
    assert 'db_replica_fallbacks_total{reason="lagging"}' in metrics


def test_stopping_the_replica_mid_run_keeps_every_read_answered(standby, tmp_path):
    owner, other = funded_user("1000.00"), funded_user("10.00")
    conversation, _ = conversation_open(created_by=owner.pk, participant_ids={other.pk})
    message_send(conversation_id=conversation.pk, sender_id=owner.pk, text="Hello")
    standby.wait_for(
        "SELECT count(*) = 1 FROM messaging_message WHERE conversation_id = %s", [conversation.pk]
    )
    messages = f"/api/conversations/{conversation.pk}/messages"
    statuses = []
    # No lag check during the run: requests meet the pooled connections to the stopped replica.
    env = server_env(standby, GUNICORN_THREADS="2", DATABASE_REPLICA_CHECK_SECONDS="600")
    with gunicorn_server(tmp_path, **env) as server:
        for n in range(6):
            if n == 2:
                standby.stop("immediate")
            # Messages are not cached: read on the replica, or run again on the primary.
            statuses.append(
                requests.get(f"{server.url}{messages}", headers=bearer(other), timeout=10).status_code
            )
            page = requests.get(f"{server.url}/api/bounties", params={"limit": 30 + n}, timeout=10)
            statuses.append(page.status_code)
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    standby.start()  # for any test after this one

    assert statuses == [200] * 12
    assert ready.status_code == 200 and ready.json()["replicas"]["replica_1"].startswith("skipped, failed")
    assert 'db_replica_fallbacks_total{reason="retried"}' in metrics


def test_the_router_keeps_writes_transactions_and_primary_apps_on_the_primary():
    router = replicas.PrimaryReplicaRouter()
    scope = replicas.Scope(request=object())
    scope.alias = "replica_1"  # as if chosen
    token = replicas._scope.set(scope)
    try:
        assert router.db_for_read(Bounty) == "replica_1"
        assert router.db_for_read(WalletTransaction) == "default"
        assert router.db_for_write(Bounty) == "default"
        assert router.allow_migrate("replica_1", "bounties") is False
        with transaction.atomic():
            assert router.db_for_read(Bounty) == "default"
    finally:
        replicas._scope.reset(token)
    assert router.db_for_read(Bounty) == "default"  # outside a request: primary

"""The faults, each injected into the throwaway stack and undone, bounded in time.

A fault returns the window it opened: when it started, when it was over from the outside
(Redis answering again, PostgreSQL accepting connections, the lock released, the worker count
back) and the moments and facts in between. The runner adds the quiet recovery period; what
the traffic saw in that window is judged in report.py.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psutil
from psycopg import sql

from perf.loadtest.chaos.harness import (
    ChaosError,
    Clock,
    GunicornServer,
    PostgresCluster,
    RedisServer,
    wait_until,
)
from perf.loadtest.chaos.plan import HANG_MARGIN_SECONDS, RECOVERY_LIMIT_SECONDS, ChaosPlan


@dataclass
class FaultWindow:
    """Times are seconds since the run started."""

    name: str
    start: float
    end: float  # the fault is over, seen from outside the application
    events: dict[str, float | int | str] = field(default_factory=dict)
    before_start: float = 0.0  # a quiet stretch before ``start``: the baseline
    observed_until: float = 0.0  # ``end`` plus the recovery period

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class Lab:
    """What a fault may act on. ``server`` is whichever gunicorn is serving right now."""

    clock: Clock
    plan: ChaosPlan
    postgres: PostgresCluster
    redis: RedisServer
    server: GunicornServer
    bounty_table: str
    say: Callable[[str], None]


@dataclass(frozen=True)
class Fault:
    name: str
    title: str
    expectation: str
    inject: Callable[[Lab], FaultWindow]


def _sleep_until(lab: Lab, moment: float) -> None:
    time.sleep(max(0.0, moment - lab.clock.now()))


def redis_down(lab: Lab) -> FaultWindow:
    """Stop the chaos redis-server, leave it down, start it again on the same port."""
    start = lab.clock.now()
    lab.redis.stop()
    stopped = lab.clock.now()
    lab.say(f"redis-server stopped; starting it again in {lab.plan.redis_down_seconds:g} s")
    _sleep_until(lab, start + lab.plan.redis_down_seconds)
    restart = lab.clock.now()
    lab.redis.start()
    back = lab.clock.now()
    lab.say("redis-server answering again")
    return FaultWindow(
        "redis-down", start, back, {"stopped_at": stopped, "restart_at": restart, "answering_at": back}
    )


def postgres_restart(lab: Lab) -> FaultWindow:
    """pg_ctl stop -m fast, leave it down, start; the end is when it accepts connections."""
    start = lab.clock.now()
    lab.postgres.stop(mode="fast")
    stopped = lab.clock.now()
    lab.say(
        f"PostgreSQL stopped (fast, {stopped - start:.1f} s); starting it in {lab.plan.pg_down_seconds:g} s"
    )
    _sleep_until(lab, stopped + lab.plan.pg_down_seconds)
    restart = lab.clock.now()
    lab.postgres.start(wait=False)
    back = (
        wait_until(lab.postgres.accepting, timeout=60, what="PostgreSQL accepting connections")
        - lab.clock.mono0
    )
    lab.say(f"PostgreSQL accepting connections again ({back - restart:.1f} s after pg_ctl start)")
    return FaultWindow(
        "postgres-restart",
        start,
        back,
        {"stopped_at": stopped, "restart_at": restart, "accepting_at": back},
    )


def pool_exhaustion(lab: Lab) -> FaultWindow:
    """Hold an ACCESS EXCLUSIVE lock on the bounties table from a side connection: requests
    that read bounties wait on it, holding their pooled connection, until statement_timeout;
    the server of this phase has fewer connections than threads, so the others wait for the
    pool."""
    with lab.postgres.connect(timeout=5) as conn:
        # Bounded: queued behind a long reader, the LOCK itself must not wait forever.
        conn.execute("SET lock_timeout = '10s'")
        start = lab.clock.now()
        conn.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(lab.bounty_table))
        )
        locked = lab.clock.now()
        lab.say(f"{lab.bounty_table} locked (ACCESS EXCLUSIVE); releasing in {lab.plan.lock_seconds:g} s")
        _sleep_until(lab, locked + lab.plan.lock_seconds)
        waiting = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()[0]
        conn.rollback()
        released = lab.clock.now()
    lab.say(f"lock released ({waiting} backends were waiting on it)")
    return FaultWindow(
        "pool-exhaustion",
        start,
        released,
        {"locked_at": locked, "released_at": released, "backends_waiting_at_release": waiting},
    )


def _client_connections(worker: psutil.Process, port: int) -> int:
    try:
        return sum(
            1
            for conn in worker.net_connections(kind="tcp")
            if conn.status == psutil.CONN_ESTABLISHED and conn.laddr and conn.laddr.port == port
        )
    except psutil.Error:
        return 0


def worker_kill(lab: Lab) -> FaultWindow:
    """SIGKILL the worker holding the most client connections; the end is when the master has
    as many workers again."""
    server = lab.server
    workers = server.workers()
    if not workers:
        raise ChaosError("gunicorn has no workers to kill")
    held = {worker.pid: _client_connections(worker, server.port) for worker in workers}
    victim = max(workers, key=lambda worker: held[worker.pid])
    start = lab.clock.now()
    os.kill(victim.pid, signal.SIGKILL)
    lab.say(f"worker {victim.pid} killed (SIGKILL) holding {held[victim.pid]} client connection(s)")

    def replaced() -> bool:
        pids = {worker.pid for worker in server.workers() if worker.status() != psutil.STATUS_ZOMBIE}
        return victim.pid not in pids and len(pids) == len(workers)

    back = wait_until(replaced, timeout=60, what="gunicorn replacing the killed worker") - lab.clock.mono0
    new = sorted({worker.pid for worker in server.workers()} - {worker.pid for worker in workers})
    lab.say(f"worker count back to {len(workers)} after {back - start:.2f} s (new pid {new})")
    return FaultWindow(
        "worker-kill",
        start,
        back,
        {
            "killed_pid": victim.pid,
            "connections_held": held[victim.pid],
            "workers": len(workers),
            "worker_count_back_at": back,
            "new_pid": new[0] if new else 0,
        },
    )


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in [
        Fault(
            "redis-down",
            "Redis down",
            "No 5xx at all and no connection errors: reads come from PostgreSQL and rate limits "
            "fail open while Redis is down.",
            redis_down,
        ),
        Fault(
            "postgres-restart",
            "PostgreSQL restart",
            "Errors only while PostgreSQL is down, and those are 503 with Retry-After (no 500, no "
            f"connection errors); every probe request 2xx again within {RECOVERY_LIMIT_SECONDS:g} s "
            "after it accepts connections.",
            postgres_restart,
        ),
        Fault(
            "pool-exhaustion",
            "Pool exhaustion with slow requests",
            "Requests that cannot get a connection fail fast with 503 + Retry-After (no 500), none "
            f"hangs past statement_timeout + {HANG_MARGIN_SECONDS:g} s, no gunicorn WORKER TIMEOUT, "
            f"every probe request 2xx again within {RECOVERY_LIMIT_SECONDS:g} s after the lock is "
            "released.",
            pool_exhaustion,
        ),
        Fault(
            "worker-kill",
            "Kill a gunicorn worker",
            "No lost request beyond those the worker held (its client connections at the kill), "
            f"no 5xx, and the master has every worker again within {RECOVERY_LIMIT_SECONDS:g} s.",
            worker_kill,
        ),
    ]
}

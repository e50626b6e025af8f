"""One chaos run from start to report: the throwaway stack, traffic, the faults in turn, then
the measures. Everything started here is stopped here, on success, error, Ctrl-C, SIGTERM or
the run's own deadline."""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import django
import gunicorn
import psutil
from psycopg import sql

from bounties.models import Bounty
from perf.loadtest.chaos import probe as probe_module
from perf.loadtest.chaos.faults import FAULTS, FaultWindow, Lab
from perf.loadtest.chaos.harness import (
    BASE_DIR,
    ChaosError,
    Clock,
    GunicornServer,
    LocustRun,
    PostgresCluster,
    RedisServer,
    free_port,
    manage,
)
from perf.loadtest.chaos.plan import ChaosPlan
from perf.loadtest.chaos.report import (
    measure_fault,
    probe_window,
    read_access_log,
    read_gunicorn_events,
    read_locust_history,
    read_locust_totals,
    render_markdown,
)
from perf.loadtest.profiles import PROFILES

# Setup (initdb, migrate, seed, boots) on top of the planned phases, before the run is cut short.
SETUP_BUDGET_SECONDS = 600


def default_report_dir() -> Path:
    return BASE_DIR / "reports" / "chaos"


@dataclass
class ChaosRun:
    """What the command prints: where the report is and whether every expectation held."""

    folder: Path
    passed: bool
    result: dict = field(repr=False)


@contextlib.contextmanager
def _interruptible(budget_seconds: float) -> Iterator[dict]:
    """SIGTERM behaves as Ctrl-C, and past ``budget_seconds`` the run interrupts itself: either
    way the cleanup below runs. Yields a dict telling whether the deadline fired."""
    state = {"deadline_hit": False}

    def deadline() -> None:
        state["deadline_hit"] = True
        _thread.interrupt_main()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Signal handlers can only be set from the main thread (call_command from elsewhere: none).
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
    timer = threading.Timer(budget_seconds, deadline)
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _app_env(*, postgres: PostgresCluster, redis: RedisServer, plan: ChaosPlan, work: Path) -> dict[str, str]:
    """The environment of every app process of the run: the throwaway services only."""
    return {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis.url,
        # Not the developer's .local/env: nothing of theirs may leak into the run.
        "BOUNTYEXPO_ENV_FILE": str(work / "no-env-file"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "TRUSTED_PROXY_COUNT": "1",
        "RATELIMIT_ENABLE": "0",
        "DATABASE_STATEMENT_TIMEOUT_MS": str(plan.statement_timeout_ms),
        "GUNICORN_WORKERS": str(plan.workers),
        "GUNICORN_THREADS": str(plan.threads),
    }


def _probe_inputs(postgres: PostgresCluster, tokens: Path) -> tuple[list[int], str]:
    query = sql.SQL("SELECT id FROM {} ORDER BY id LIMIT 3000").format(sql.Identifier(Bounty._meta.db_table))
    with postgres.connect() as conn:
        ids = [row[0] for row in conn.execute(query)]
    token = tokens.read_text().split("\n", 1)[0].split()[1]
    if not ids:
        raise ChaosError("seed_data left no bounties for the probe")
    return ids, token


def _locust_profile(plan: ChaosPlan, seconds: float) -> tuple[dict, list[str]]:
    """The `normal` profile's mix, one stage long enough to outlast the run (it is stopped)."""
    normal = PROFILES["normal"]
    profile = normal.overridden(
        users=plan.users,
        duration=int(seconds),
        spawn_rate=max(1.0, plan.users / 3),
        think_time=plan.think_time,
    )
    return profile.as_json(), list(profile.users_mix)


@dataclass
class _Stack:
    postgres: PostgresCluster
    redis: RedisServer
    env: dict[str, str]  # for every app process of the run
    tokens: Path  # seed_data's tokens, for locust's signed-in users
    token: str  # the probe's
    bounty_ids: list[int]  # the probe's detail requests cycle through these


def _bring_up_stack(
    *,
    plan: ChaosPlan,
    work: Path,
    folder: Path,
    cleanup: contextlib.ExitStack,
    log: Callable[[str], None],
    timings: dict[str, float],
    keep: bool,
) -> _Stack:
    """The throwaway PostgreSQL and Redis, migrated and seeded; each registered for cleanup
    as soon as it exists."""
    clock_start = time.monotonic()
    setup_log = folder / "setup.log"
    postgres = PostgresCluster(work, log=setup_log)
    cleanup.callback(postgres.destroy, keep=keep)
    cleanup.callback(_copy, postgres.logfile, folder / "postgres.log")
    postgres.init()
    postgres.start()
    postgres.create_database()
    log(f"PostgreSQL {postgres.version()} on 127.0.0.1:{postgres.port} ({postgres.home})")
    redis_server = RedisServer(work)
    cleanup.callback(_copy, redis_server.dir / "redis.log", folder / "redis.log")
    cleanup.callback(redis_server.stop)
    redis_server.start()
    log(f"redis-server on 127.0.0.1:{redis_server.port}")
    timings["services_s"] = time.monotonic() - clock_start
    env = _app_env(postgres=postgres, redis=redis_server, plan=plan, work=work)
    manage(["migrate", "--noinput", "-v0"], env=env, log=setup_log, timeout=600, what="migrate")
    timings["migrate_s"] = time.monotonic() - clock_start - timings["services_s"]
    tokens = work / "tokens.txt"
    manage(
        ["seed_data", *plan.seed_args, "--tokens-file", str(tokens)],
        env=env,
        log=setup_log,
        timeout=900,
        what="seed_data",
    )
    timings["seed_s"] = time.monotonic() - clock_start - timings["services_s"] - timings["migrate_s"]
    log(f"migrated ({timings['migrate_s']:.0f} s) and seeded ({timings['seed_s']:.0f} s)")
    ids, token = _probe_inputs(postgres, tokens)
    return _Stack(postgres, redis_server, env, tokens, token, ids)


class _Stage:
    """The run's moving parts, so the cleanup and the faults see the current ones (the pool
    fault serves from a gunicorn of its own)."""

    server: GunicornServer | None = None
    probe: probe_module.Probe | None = None

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()


def run_chaos(
    *, plan: ChaosPlan, report_dir: Path, keep: bool = False, say: Callable[[str], None] = print
) -> ChaosRun:
    """Run ``plan`` and write report.md, report.json and the raw records in a new folder."""
    clock = Clock()
    started_at = datetime.now().astimezone()
    folder = report_dir / f"{started_at:%Y%m%d-%H%M%S}"
    if folder.exists():
        folder = report_dir / f"{started_at:%Y%m%d-%H%M%S}-{os.getpid()}"
    folder.mkdir(parents=True)
    work = BASE_DIR / ".local" / "chaos" / folder.name
    work.mkdir(parents=True)

    def log(line: str) -> None:
        say(f"[{clock.now():6.1f} s] {line}")

    timings: dict[str, float] = {}
    windows: list[FaultWindow] = []
    restarts: list[dict] = []
    facts: dict[str, str] = {}
    stage = _Stage()
    budget = SETUP_BUDGET_SECONDS + 2 * plan.planned_seconds() + 120
    interrupted = ""
    with _interruptible(budget) as deadline, contextlib.ExitStack() as cleanup:
        if not keep:
            cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        cleanup.callback(log, "every process of the run stopped")
        try:
            log(f"report folder {folder}")
            stack = _bring_up_stack(
                plan=plan, work=work, folder=folder, cleanup=cleanup, log=log, timings=timings, keep=keep
            )
            postgres, redis_server, env = stack.postgres, stack.redis, stack.env

            port = free_port()

            def new_server(**extra: str) -> GunicornServer:
                return GunicornServer(
                    port=port,
                    env=env | extra,
                    work=work,
                    log=folder / "gunicorn.log",
                    access_log=folder / "access.log",
                )

            def pool_server() -> GunicornServer:
                return new_server(
                    DATABASE_POOL_MAX=str(plan.pool_max),
                    DATABASE_POOL_MIN="1",
                    # README: a pool smaller than its threads gets a bounded queue, so the
                    # requests it cannot serve soon are refused at once instead of waiting.
                    DATABASE_POOL_MAX_WAITING=str(plan.pool_max),
                    GUNICORN_THREADS=str(plan.pool_threads),
                )

            stage.server = new_server()
            cleanup.callback(stage.stop_server)
            stage.server.start()
            facts.update(
                postgres=postgres.version(),
                redis=redis_server.version(),
                workers=str(len(stage.server.workers())),
                cluster=str(postgres.home),
            )
            log(f"gunicorn on {stage.server.url}: {facts['workers']} workers x {plan.threads} threads")

            profile, users_mix = _locust_profile(plan, budget)
            locust = LocustRun(
                host=stage.server.url,
                profile=profile,
                users_mix=users_mix,
                tokens=stack.tokens,
                prefix=folder / "locust",
            )
            cleanup.callback(locust.stop)
            locust.start()
            stage.probe = probe_module.Probe(
                port=port,
                rate=plan.probe_rate,
                token=stack.token,
                bounty_ids=stack.bounty_ids,
                clock=clock.now,
            )
            cleanup.callback(stage.probe.stop)
            stage.probe.start()
            log(f"traffic: locust {plan.users} users ({', '.join(users_mix)}), probe {plan.probe_rate:g}/s")
            time.sleep(plan.warmup_seconds)
            timings["warmup_end_s"] = clock.now()

            lab = Lab(clock, plan, postgres, redis_server, stage.server, Bounty._meta.db_table, log)
            for name in plan.faults:
                fault = FAULTS[name]
                if name == "pool-exhaustion":
                    log(f"new gunicorn for this fault: pool of {plan.pool_max}, {plan.pool_threads} threads")
                    restarts.append(_swap(stage, pool_server, clock, "to the small-pool server"))
                    lab.server = stage.server
                # Windows never touch: the access log's whole seconds cannot spill into the
                # previous fault's window.
                baseline_start = clock.now()
                time.sleep(plan.baseline_seconds)
                log(f"fault {name}: {fault.title}")
                window = fault.inject(lab)
                window.before_start = baseline_start
                time.sleep(plan.recovery_seconds)
                window.observed_until = clock.now()
                windows.append(window)
                if name == "pool-exhaustion":
                    log("gunicorn restarted with the regular settings")
                    restarts.append(_swap(stage, new_server, clock, "back to the regular server"))
                    lab.server = stage.server
            timings["faults_end_s"] = clock.now()
            records = stage.probe.stop()
            locust.stop()
            log(f"traffic stopped: the probe sent {len(records)} requests")
        except KeyboardInterrupt:
            interrupted = "stopped at its deadline" if deadline["deadline_hit"] else "interrupted"
            log(f"run {interrupted}: stopping every process it started")
        except ChaosError as exc:
            log("run failed: stopping every process it started")
            raise ChaosError(f"{exc}\n(logs in {folder})") from None
    if interrupted:
        raise ChaosError(f"chaos run {interrupted}; logs so far in {folder}")
    timings["total_s"] = clock.now()
    result = _result(
        plan=plan,
        clock=clock,
        folder=folder,
        started_at=started_at,
        windows=windows,
        restarts=restarts,
        records=records,
        timings=timings,
        facts=facts,
    )
    probe_module.write_csv(records, folder / "probe.csv")
    (folder / "report.json").write_text(json.dumps(result, indent=2, default=str))
    (folder / "report.md").write_text(result["markdown"])
    return ChaosRun(folder=folder, passed=result["passed"], result=result)


def _copy(source: Path, target: Path) -> None:
    if source.exists():
        shutil.copy(source, target)


def _swap(stage: _Stage, make: Callable[[], GunicornServer], clock: Clock, reason: str) -> dict:
    """Replace the serving gunicorn by a new one on the same port (a deploy's stop and start)."""
    start = clock.now()
    stage.stop_server()
    stage.server = make()
    stage.server.start()
    return {"reason": f"gunicorn restarted {reason}", "start": start, "end": clock.now()}


def _result(
    *,
    plan: ChaosPlan,
    clock: Clock,
    folder: Path,
    started_at: datetime,
    windows: list[FaultWindow],
    restarts: list[dict],
    records: list[probe_module.ProbeRecord],
    timings: dict[str, float],
    facts: dict[str, str],
) -> dict:
    server_lines = read_access_log(folder / "access.log", clock.wall0)
    gunicorn_events = read_gunicorn_events(folder / "gunicorn.log", clock.wall0)
    locust_points = read_locust_history(folder / "locust", clock.wall0)
    faults = [
        measure_fault(
            window,
            records=records,
            server_lines=server_lines,
            gunicorn_events=gunicorn_events,
            locust_points=locust_points,
            plan=plan,
        )
        for window in windows
    ]
    for restart in restarts:
        restart["probe"] = probe_window(records, restart["start"], restart["end"])
    think = (
        f"{plan.think_time:g} s"
        if plan.think_time is not None
        else "{:g}-{:g} s".format(*PROFILES["normal"].think_time)
    )
    memory = psutil.virtual_memory().total / 2**30
    environment = {
        "Date": f"{started_at:%Y-%m-%d %H:%M:%S %Z}",
        "Machine": f"{platform.system()} {platform.machine()}, {psutil.cpu_count()} cores, {memory:.0f} GiB",
        "Software": f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"gunicorn {gunicorn.__version__}, PostgreSQL {facts.get('postgres', '?')}, "
        f"Redis {facts.get('redis', '?')}",
        "Server": f"gunicorn gthread (deploy/gunicorn.conf.py), {facts.get('workers', '?')} workers x "
        f"{plan.threads} threads, the settings' pool; statement_timeout {plan.statement_timeout_ms} ms; "
        f"pool fault: pool of {plan.pool_max} for {plan.pool_threads} threads",
        "Stack": f"throwaway PostgreSQL cluster ({facts.get('cluster', '?')}) and redis-server, "
        f"deleted after the run; seed_data {plan.seed_users} users, {plan.seed_bounties} bounties",
        "Traffic": f"locust `normal` mix, {plan.users} users, think time {think}; "
        f"probe {plan.probe_rate:g} requests/s (list, detail, search, wallet), open loop, "
        "a new connection each",
        "Durations": f"warm-up {plan.warmup_seconds:g} s, recovery period {plan.recovery_seconds:g} s "
        f"after each fault, Redis down {plan.redis_down_seconds:g} s, PostgreSQL down "
        f"{plan.pg_down_seconds:g} s, lock {plan.lock_seconds:g} s, baseline {plan.baseline_seconds:g} s "
        "before each fault" + (" (--quick)" if plan.quick else ""),
        "Run time": f"setup {timings.get('warmup_end_s', 0) - plan.warmup_seconds:.0f} s "
        f"(migrate {timings.get('migrate_s', 0):.0f} s, seed {timings.get('seed_s', 0):.0f} s), "
        f"faults {timings.get('faults_end_s', 0) - timings.get('warmup_end_s', 0):.0f} s, "
        f"total {timings.get('total_s', 0):.0f} s",
    }
    result = {
        "started_at": started_at.isoformat(),
        "folder": str(folder),
        "cluster": facts.get("cluster", ""),
        "plan": plan.as_json(),
        "environment": environment,
        "timings": {name: round(value, 1) for name, value in timings.items()},
        "faults": faults,
        "server_restarts": restarts,
        "probe_total": probe_window(records, 0, float("inf")),
        "locust": read_locust_totals(folder / "locust"),
        "worker_timeouts_total": sum(1 for _, text in gunicorn_events if "WORKER TIMEOUT" in text),
        "passed": bool(faults) and all(fault["passed"] for fault in faults),
    }
    result["markdown"] = render_markdown(result)
    return result

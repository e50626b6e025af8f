"""Runs one load test: locust headless in its own process (it monkey-patches with gevent, see
TRAPS), watched from here, then judged, reported and stored as a LoadTestRun."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import django
import psutil
from django.conf import settings
from django.db import connection
from django.utils import timezone
from redis.exceptions import RedisError

from core.management.base import require_migrated_database
from perf.loadtest import churn as churning
from perf.loadtest import sampler as resources
from perf.loadtest.profiles import Profile
from perf.loadtest.report import bottlenecks, render_chart, render_comparison, render_markdown
from perf.loadtest.results import RunStats, evaluate, load_stats, passed
from perf.models import LoadTestRun

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# Locust's own HTML report, written beside report.md.
LOCUST_HTML = "locust.html"
# The locust users that sign in with the tokens file.
TOKEN_USERS = {"MemberUser", "ChurnWriter"}
# Beyond the profile's duration, before the generator is stopped from here (locust ignores
# --run-time when a load shape drives the run).
GRACE_SECONDS = 30


class LoadTestError(Exception):
    """A mistake the operator can fix (host down, no tokens...): one clear line, no traceback."""


def preflight(host: str) -> None:
    try:
        with urllib.request.urlopen(f"{host}/readyz", timeout=5) as response:  # noqa: S310 (operator's host)
            response.read()
    except urllib.error.HTTPError as exc:
        raise LoadTestError(f"{host} is not ready: /readyz answered {exc.code}.") from None
    except (urllib.error.URLError, OSError) as exc:
        raise LoadTestError(
            f"cannot reach {host}/readyz: {getattr(exc, 'reason', exc)}. Is the server running?"
        ) from None


def _environment(server: list[psutil.Process]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    try:
        redis_version = resources.get_redis_connection("default").info("server")["redis_version"]
    except RedisError:
        redis_version = "unreachable"
    workers = max(0, len(server) - 1)
    return (
        f"{platform.system()} {platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; Python {platform.python_version()}, "
        f"Django {django.get_version()}, PostgreSQL {postgres.split()[0]}, Redis {redis_version}; "
        f"server: {workers} worker process(es) under pid {server[0].pid if server else '?'}; "
        "load generator on the same machine"
    )


def _last_history_row(prefix: Path) -> dict | None:
    path = Path(f"{prefix}_stats_history.csv")
    if not path.exists():
        return None
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    return rows[-1] if rows else None


def _progress_line(started: float, prefix: Path) -> str:
    row = _last_history_row(prefix)
    elapsed = time.monotonic() - started
    if row is None:
        return f"{elapsed:5.0f} s  starting..."
    requests, failures = int(row["Total Request Count"]), int(row["Total Failure Count"])
    errors = failures / requests * 100 if requests else 0.0
    return (
        f"{elapsed:5.0f} s  users {int(row['User Count']):4d}  rps {float(row['Requests/s']):7.1f}  "
        f"p95 {row['95%']:>6} ms  errors {failures:,} ({errors:.2f} %)  requests {requests:,}"
    )


@dataclass(frozen=True)
class RunRequest:
    """What the operator asked for (manage.py loadtest's options, resolved)."""

    profile: Profile
    host: str
    report_dir: Path
    tokens_file: Path
    server_pid: int | None = None  # the server's master process, for CPU and memory
    notes: str = ""
    actions: str = ""
    compare_with: LoadTestRun | None = None  # also write a before/after table against this run
    baseline: LoadTestRun | None = None  # churn: judge issue 13's targets against this run


@dataclass
class _Launch:
    """A run about to start: where it writes and what the counters read before it."""

    request: RunRequest
    host: str
    server: list[psutil.Process]
    started_at: datetime
    workdir: Path
    statements_before: dict
    redis_before: dict
    cache_before: dict

    @property
    def prefix(self) -> Path:  # locust's --csv prefix
        return self.workdir / "locust"

    @property
    def churn(self) -> bool:
        return self.request.profile.name == "churn"


@dataclass
class _Observed:
    """What watching the load generator collected."""

    finished_at: datetime
    samples: resources.ResourceSamples
    scrapes: list


def run_loadtest(
    request: RunRequest, progress: Callable[[str, bool], None] = lambda line, final: None
) -> LoadTestRun:
    """Run ``request.profile`` against ``request.host`` and store the result; see the module
    docstring. Four stages: check and prepare, drive locust while sampling the machine, judge
    the figures against the thresholds, write the reports and store the run.

    A churn run also records reads and cache hits per second, and with ``baseline`` (an earlier
    churn run) is judged by issue 13's targets relative to it as well."""
    launch = _prepare(request)
    observed = _drive(launch, progress)
    stats, result = _judge(launch, observed)
    return _store(launch, observed, stats, result)


def _prepare(request: RunRequest) -> _Launch:
    """Refuse what cannot work (server not ready, no tokens), make the run's folder and read
    the counters the run's figures are deltas of."""
    host = request.host.rstrip("/")
    preflight(host)
    require_migrated_database()  # the run is stored as a LoadTestRun
    profile = request.profile
    if TOKEN_USERS & {*profile.users_mix, *profile.fixed_users} and not request.tokens_file.exists():
        raise LoadTestError(
            f"no tokens file at {request.tokens_file}: run `manage.py seed_data` first (or --tokens-file)."
        )
    started_at = timezone.now()
    workdir = request.report_dir / f"{started_at:%Y%m%d-%H%M%S}-{profile.name}"
    workdir.mkdir(parents=True, exist_ok=True)
    return _Launch(
        request=request,
        host=host,
        server=resources.server_processes(request.server_pid),
        started_at=started_at,
        workdir=workdir,
        statements_before=resources.statements_snapshot(),
        redis_before=resources.redis_counters(),
        cache_before=resources.response_cache_counters(host),
    )


def _drive(launch: _Launch, progress: Callable[[str, bool], None]) -> _Observed:
    """Run locust headless in its own process, sample the server's and the generator's CPU and
    memory (and, for churn, the cache counters) until it ends, reporting progress each second."""
    profile, workdir, prefix = launch.request.profile, launch.workdir, launch.prefix
    env = {
        **os.environ,
        "LOADTEST_PROFILE": json.dumps(profile.as_json()),
        "LOADTEST_TOKENS": str(launch.request.tokens_file),
        # The locustfile imports perf.loadtest.churn (plain Python) from the project.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH")])),
    }
    if launch.churn:
        env["LOADTEST_CHURN_FILE"] = str(workdir / churning.SECONDS_JSON)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", launch.host,
        "--csv", str(prefix), "--html", str(workdir / LOCUST_HTML), "--stop-timeout", "5",
        "--only-summary", "--loglevel", "WARNING", *profile.users_mix, *profile.fixed_users,
    ]  # fmt: skip
    with open(workdir / "locust.log", "w") as log:
        generator = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    sampler = resources.Sampler(
        server_pid=launch.server[0].pid if launch.server else None, generator=psutil.Process(generator.pid)
    )
    sampler.start()
    scraper = resources.CacheScraper(launch.host) if launch.churn else None
    if scraper is not None:
        scraper.start()
    started = time.monotonic()
    try:
        while generator.poll() is None:
            time.sleep(1)
            progress(_progress_line(started, prefix), False)
            if time.monotonic() - started > profile.duration + 2 * GRACE_SECONDS:
                generator.terminate()
    finally:
        if generator.poll() is None:
            generator.kill()
        samples = sampler.stop()
        scrapes = scraper.stop() if scraper is not None else []
    progress(_progress_line(started, prefix), True)
    if not Path(f"{prefix}_stats.csv").exists():
        raise LoadTestError(f"the load generator failed before writing results; see {workdir / 'locust.log'}")
    return _Observed(finished_at=timezone.now(), samples=samples, scrapes=scrapes)


def _judge(launch: _Launch, observed: _Observed) -> tuple[RunStats, dict]:
    """Locust's figures and the run's ``result``: the figures checked against the profile's
    thresholds, the machine's resources, and what PostgreSQL, Redis and the response cache did
    meanwhile."""
    request, profile = launch.request, launch.request.profile
    stats = load_stats(launch.prefix)
    checks = evaluate(stats, profile.thresholds)
    churn_section = None
    if launch.churn:
        churn_section = churning.merge(
            churning.read_seconds_file(launch.workdir / churning.SECONDS_JSON),
            churning.cache_series(observed.scrapes),
            profile.writes_per_second,
            sum(profile.fixed_users.values()),
        )
        churning.write_series_csv(churn_section, launch.workdir / churning.SECONDS_CSV)
        if request.baseline is not None:
            checks += churning.baseline_checks(churn_section, request.baseline.data["churn"])
    statements_after = resources.statements_snapshot()
    result = {
        "profile": profile.as_json(),
        "host": launch.host,
        "started_at": launch.started_at.isoformat(),
        "finished_at": observed.finished_at.isoformat(),
        "duration_s": (observed.finished_at - launch.started_at).total_seconds(),
        "ramp_up_s": profile.ramp_up_seconds(),
        "environment": _environment(launch.server),
        "stats": stats.as_json() | {"max_users": stats.max_users},
        "checks": [asdict(check) for check in checks],
        "passed": passed(checks),
        "resources": observed.samples.summary(),
        "database": {"top_queries": resources.statements_delta(launch.statements_before, statements_after)},
        "redis": resources.redis_delta(launch.redis_before, resources.redis_counters()),
        "response_cache": resources.response_cache_delta(
            launch.cache_before, resources.response_cache_counters(launch.host)
        ),
        "notes": request.notes,
        "actions": request.actions,
    }
    if churn_section is not None:
        baseline = request.baseline
        result["churn"] = churn_section | {"baseline_run": baseline.pk if baseline else None}
    result["bottlenecks"] = bottlenecks(result)
    result["markdown"] = render_markdown(result)
    return stats, result


def _store(launch: _Launch, observed: _Observed, stats: RunStats, result: dict) -> LoadTestRun:
    """Write report.md, report.json and chart.png into the run's folder, store the LoadTestRun
    and, with --compare, the before/after table."""
    request, workdir = launch.request, launch.workdir
    (workdir / "report.md").write_text(result["markdown"])
    (workdir / "report.json").write_text(json.dumps(result, indent=2, default=str))
    render_chart(result, workdir / "chart.png")
    run = LoadTestRun.objects.create(
        profile=request.profile.name,
        host=launch.host,
        started_at=launch.started_at,
        finished_at=observed.finished_at,
        max_users=stats.max_users,
        duration_s=round(result["duration_s"]),
        think_time=f"{request.profile.think_time[0]:g}-{request.profile.think_time[1]:g} s",
        requests=stats.total.requests,
        p95_ms=stats.total.p95_ms,
        p99_ms=stats.total.p99_ms,
        error_rate=stats.error_rate,
        rps=stats.steady_rps,
        passed=result["passed"],
        data=result,
        report_path=str(workdir / "report.md"),
        notes=request.notes,
    )
    if request.compare_with is not None:
        # A stored run folder (no id on this database) is named by its folder.
        compare_with = request.compare_with
        before = compare_with.pk
        if before is None:
            before = Path(compare_with.report_path).parent.name
        comparison = render_comparison(compare_with.data, result, before, f"{run.pk} ({workdir.name})")
        (workdir / f"compare-{before}.md").write_text(comparison)
        run.data["comparison"] = comparison
        run.save(update_fields=["data"])
    return run


def default_report_dir() -> Path:
    return Path(settings.BASE_DIR) / "reports" / "loadtests"

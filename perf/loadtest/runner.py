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
from dataclasses import asdict
from pathlib import Path

import django
import psutil
from django.conf import settings
from django.db import connection
from django.utils import timezone
from redis.exceptions import RedisError

from perf.loadtest import churn as churning
from perf.loadtest import sampler as resources
from perf.loadtest.profiles import Profile
from perf.loadtest.report import bottlenecks, render_chart, render_comparison, render_markdown
from perf.loadtest.results import evaluate, load_stats, passed
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


def run_loadtest(
    *,
    profile: Profile,
    host: str,
    report_dir: Path,
    tokens_file: Path,
    server_pid: int | None = None,
    notes: str = "",
    actions: str = "",
    compare_with: LoadTestRun | None = None,
    baseline: LoadTestRun | None = None,
    progress: Callable[[str, bool], None] = lambda line, final: None,
) -> LoadTestRun:
    """Run ``profile`` against ``host`` and store the result; see the module docstring.

    A churn run also records reads and cache hits per second, and with ``baseline`` (an earlier
    churn run) is judged by issue 13's targets relative to it as well."""
    host = host.rstrip("/")
    preflight(host)
    churn = profile.name == "churn"
    if TOKEN_USERS & {*profile.users_mix, *profile.fixed_users} and not tokens_file.exists():
        raise LoadTestError(
            f"no tokens file at {tokens_file}: run `manage.py seed_data` first (or --tokens-file)."
        )
    server = resources.server_processes(server_pid)
    started_at = timezone.now()
    workdir = report_dir / f"{started_at:%Y%m%d-%H%M%S}-{profile.name}"
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = workdir / "locust"

    statements_before = resources.statements_snapshot()
    redis_before = resources.redis_counters()
    cache_before = resources.response_cache_counters(host)
    env = {
        **os.environ,
        "LOADTEST_PROFILE": json.dumps(profile.as_json()),
        "LOADTEST_TOKENS": str(tokens_file),
        # The locustfile imports perf.loadtest.churn (plain Python) from the project.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH")])),
    }
    if churn:
        env["LOADTEST_CHURN_FILE"] = str(workdir / churning.SECONDS_JSON)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
        "--csv", str(prefix), "--html", str(workdir / LOCUST_HTML), "--stop-timeout", "5",
        "--only-summary", "--loglevel", "WARNING", *profile.users_mix, *profile.fixed_users,
    ]  # fmt: skip
    with open(workdir / "locust.log", "w") as log:
        generator = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    sampler = resources.Sampler(
        server_pid=server[0].pid if server else None, generator=psutil.Process(generator.pid)
    )
    sampler.start()
    scraper = resources.CacheScraper(host) if churn else None
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
    finished_at = timezone.now()

    if not Path(f"{prefix}_stats.csv").exists():
        raise LoadTestError(f"the load generator failed before writing results; see {workdir / 'locust.log'}")
    stats = load_stats(prefix)
    checks = evaluate(stats, profile.thresholds)
    churn_section = None
    if churn:
        churn_section = churning.merge(
            churning.read_seconds_file(workdir / churning.SECONDS_JSON),
            churning.cache_series(scrapes),
            profile.writes_per_second,
            sum(profile.fixed_users.values()),
        )
        churning.write_series_csv(churn_section, workdir / churning.SECONDS_CSV)
        if baseline is not None:
            checks += churning.baseline_checks(churn_section, baseline.data["churn"])
    result = {
        "profile": profile.as_json(),
        "host": host,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "duration_s": (finished_at - started_at).total_seconds(),
        "ramp_up_s": profile.ramp_up_seconds(),
        "environment": _environment(server),
        "stats": stats.as_json() | {"max_users": stats.max_users},
        "checks": [asdict(check) for check in checks],
        "passed": passed(checks),
        "resources": samples.summary(),
        "database": {
            "top_queries": resources.statements_delta(statements_before, resources.statements_snapshot())
        },
        "redis": resources.redis_delta(redis_before, resources.redis_counters()),
        "response_cache": resources.response_cache_delta(
            cache_before, resources.response_cache_counters(host)
        ),
        "notes": notes,
        "actions": actions,
    }
    if churn_section is not None:
        result["churn"] = churn_section | {"baseline_run": baseline.pk if baseline else None}
    result["bottlenecks"] = bottlenecks(result)
    result["markdown"] = render_markdown(result)
    (workdir / "report.md").write_text(result["markdown"])
    (workdir / "report.json").write_text(json.dumps(result, indent=2, default=str))
    render_chart(result, workdir / "chart.png")
    run = LoadTestRun.objects.create(
        profile=profile.name,
        host=host,
        started_at=started_at,
        finished_at=finished_at,
        max_users=stats.max_users,
        duration_s=round(result["duration_s"]),
        think_time=f"{profile.think_time[0]:g}-{profile.think_time[1]:g} s",
        requests=stats.total.requests,
        p95_ms=stats.total.p95_ms,
        p99_ms=stats.total.p99_ms,
        error_rate=stats.error_rate,
        rps=stats.steady_rps,
        passed=result["passed"],
        data=result,
        report_path=str(workdir / "report.md"),
        notes=notes,
    )
    if compare_with is not None:
        # A stored run folder (no id on this database) is named by its folder.
        before = (
            compare_with.pk if compare_with.pk is not None else Path(compare_with.report_path).parent.name
        )
        comparison = render_comparison(compare_with.data, result, before, run.pk)
        (workdir / f"compare-{before}.md").write_text(comparison)
        run.data["comparison"] = comparison
        run.save(update_fields=["data"])
    return run


def default_report_dir() -> Path:
    return Path(settings.BASE_DIR) / "reports" / "loadtests"

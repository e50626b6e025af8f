"""`manage.py loadtest` as an operator runs it: mistakes get one line, and a real short run
against gunicorn serving the test database stores a run and writes the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from perf.loadtest.runner import _progress_line
from perf.models import LoadTestRun
from tests.conftest import free_port, gunicorn_server, subprocess_env


def manage(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_unknown_profile_is_one_clear_line():
    result = manage("loadtest", "marathon")

    assert result.returncode != 0
    assert "unknown profile 'marathon'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_host_is_one_clear_line():
    result = manage("loadtest", "baseline", "--host", f"http://127.0.0.1:{free_port()}")

    assert result.returncode != 0
    assert "cannot reach" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("min_rps", "exit_status"), [("1", 0), ("100000", 1)], ids=["passing", "failing"])
def test_a_short_real_run_reports_stores_and_exits_with_its_verdict(tmp_path, min_rps, exit_status):
    tokens = tmp_path / "tokens.txt"
    small = ["--users", "60", "--bounties", "400", "--transactions", "3000", "--messages", "1000"]
    call_command(
        "seed_data", *small, "--conversations", "100", "--tokens", "20", "--tokens-file", str(tokens)
    )
    # The failing variant also compares with an earlier run (the recorded fixture, stored).
    recorded = json.loads((Path(__file__).with_name("data") / "baseline_report.json").read_text())
    now = timezone.now()
    earlier = LoadTestRun.objects.create(
        profile="baseline",
        host="recorded",
        started_at=now,
        finished_at=now,
        max_users=5,
        duration_s=20,
        think_time="1-3 s",
        requests=65,
        p95_ms=43,
        p99_ms=280,
        error_rate=0,
        rps=3.3,
        passed=True,
        data=recorded,
    )
    # The passing variant compares with a committed run folder, as on a fresh clone.
    committed = Path(settings.BASE_DIR) / "docs" / "loadtests" / "20261127-001055-baseline"
    compare = ["--compare", str(earlier.pk)] if exit_status else ["--compare", str(committed)]
    connection.close()  # the server and the command below use their own connections
    # A few users with 0.2 s think time are far over the per-client API limits.
    no_limits = {f"RATELIMIT_{tier.upper()}": "100000/m" for tier in settings.RATE_LIMITS}
    with gunicorn_server(tmp_path, **no_limits) as server:
        result = manage(
            "loadtest", "normal", "--host", server.url, "--users", "4", "--duration", "15",
            "--spawn-rate", "4", "--think-time", "0.2", "--p95", "5000", "--p99", "10000",
            "--min-rps", min_rps,
            "--server-pid", str(server.pid), "--tokens-file", str(tokens),
            "--report-dir", str(tmp_path / "reports"), *compare,
            env=subprocess_env(**no_limits),
        )  # fmt: skip

    assert result.returncode == exit_status, result.stdout + result.stderr
    assert "| Metric | Value | Target | Status |" in result.stdout
    assert "| Error Rate | 0.00 % | < 1 % | pass |" in result.stdout
    run = LoadTestRun.objects.exclude(pk=earlier.pk).get()
    assert run.passed is (exit_status == 0)
    if exit_status:
        assert "thresholds failed: Throughput" in result.stderr
        assert f"# Comparison: run {earlier.pk} (baseline" in result.stdout
        assert "| p95 ms | 43 |" in run.data["comparison"]
    else:
        assert "# Comparison: run 20261127-001055-baseline (baseline, 2026-11-27" in result.stdout
        assert "| p95 ms | 16 |" in run.data["comparison"]  # the committed run's p95
    assert run.requests > 20
    assert run.max_users == 4
    report_dir = next((tmp_path / "reports").iterdir())
    expected = {"report.md", "report.json", "chart.png", "locust.html"} | (
        {f"compare-{earlier.pk}.md"} if exit_status else {"compare-20261127-001055-baseline.md"}
    )
    assert expected <= {path.name for path in report_dir.iterdir()}
    assert "GET /api/bounties" in (report_dir / "locust.html").read_text()  # locust's own report
    assert run.data["resources"]["server_rss_mb"]["max"] > 0
    assert run.data["database"]["top_queries"]
    endpoints = {endpoint["name"] for endpoint in run.data["stats"]["endpoints"]}
    assert {"GET /api/bounties", "GET /api/wallet", "POST /api/wallet/deposits"} <= endpoints


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("987654", "no load-test run 987654 to compare with."),
        (
            "docs/no-such-run",
            "--compare docs/no-such-run: no report.json at docs/no-such-run: give a load-test run",
        ),
        ("README.md", "--compare README.md: README.md is not a load-test report"),
    ],
)
def test_compare_names_a_missing_run_or_folder_in_one_line_before_any_load(value, message, monkeypatch):
    monkeypatch.chdir(settings.BASE_DIR)
    with pytest.raises(CommandError) as excinfo:
        call_command("loadtest", "baseline", "--compare", value, "--host", "http://127.0.0.1:9")

    assert str(excinfo.value).startswith(message)


def test_the_progress_line_shows_the_current_p95_and_the_errors_so_far(tmp_path):
    header = "Timestamp,User Count,Type,Name,Requests/s,95%,Total Request Count,Total Failure Count"
    rows = [
        "1,10,,Aggregated,5.0,N/A,0,0",
        "2,10,GET,GET /api/bounties,9.0,80,400,0",
        "3,50,,Aggregated,41.5,230,2000,7",
    ]
    (tmp_path / "locust_stats_history.csv").write_text("\n".join([header, *rows]) + "\n")

    line = _progress_line(time.monotonic() - 12, tmp_path / "locust")

    assert " ".join(line.split()) == "12 s users 50 rps 41.5 p95 230 ms errors 7 (0.35 %) requests 2,000"

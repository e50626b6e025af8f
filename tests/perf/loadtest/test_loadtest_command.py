"""`manage.py loadtest` as an operator runs it: mistakes get one line, and a real short run
against gunicorn serving the test database stores a run and writes the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

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
    compare = ["--compare", str(earlier.pk)] if exit_status else []
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
    assert run.requests > 20
    assert run.max_users == 4
    report_dir = next((tmp_path / "reports").iterdir())
    expected = {"report.md", "report.json", "chart.png"} | (
        {f"compare-{earlier.pk}.md"} if exit_status else set()
    )
    assert expected <= {path.name for path in report_dir.iterdir()}
    assert run.data["resources"]["server_rss_mb"]["max"] > 0
    assert run.data["database"]["top_queries"]
    endpoints = {endpoint["name"] for endpoint in run.data["stats"]["endpoints"]}
    assert {"GET /api/bounties", "GET /api/wallet", "POST /api/wallet/deposits"} <= endpoints

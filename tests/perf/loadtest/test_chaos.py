"""`manage.py chaos --quick` end to end: a throwaway stack, the four faults under load, every
expectation met, a report that says what was measured, and nothing left running afterwards."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from perf.loadtest.chaos.plan import FAULT_NAMES, ChaosPlan

QUICK = ChaosPlan.quick_plan()


def run_chaos_command(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """The command as an operator runs it; on timeout it gets Ctrl-C, so it cleans up."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "chaos", *args],
        cwd=settings.BASE_DIR,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        pytest.fail(f"chaos --quick did not finish within {timeout} s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def processes_mentioning(text: str) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if text in cmdline:
            found.append(cmdline)
    return found


def test_a_pool_that_cannot_run_out_is_refused_in_one_line(tmp_path):
    result = run_chaos_command(
        "--quick", "--pool-max", "8", "--pool-threads", "4", "--report-dir", str(tmp_path), timeout=60
    )

    assert result.returncode != 0
    assert "--pool-max (8) must be smaller than --pool-threads (4)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path, dict]:
    """One quick run shared by the assertions below (it takes about a minute and a half)."""
    reports = tmp_path_factory.mktemp("chaos")
    result = run_chaos_command("--quick", "--report-dir", str(reports), timeout=360)
    folders = [path.parent for path in reports.glob("*/report.json")]
    assert len(folders) == 1, f"no report written:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result, folders[0], json.loads((folders[0] / "report.json").read_text())


@pytest.mark.timeout(420)
def test_quick_run_reports_every_fault_in_order_with_its_verdict(quick_run):
    result, folder, report = quick_run

    assert [fault["name"] for fault in report["faults"]] == list(FAULT_NAMES)
    for fault in report["faults"]:
        assert fault["expectation"]
        assert fault["checks"]
        assert all(set(check) == {"check", "measured", "expected", "passed"} for check in fault["checks"])
        assert fault["passed"] == all(check["passed"] for check in fault["checks"])
        for key in ("probe", "server"):
            measured = fault["measured"][key]
            assert {"5xx_by_status", "5xx", "500"} <= set(measured)
            assert measured["5xx"] == sum(measured["5xx_by_status"].values())
        assert {"connection_errors", "max_latency_ms"} <= set(fault["measured"]["probe"])
        assert {"first_success_s", "sustained_success_s"} <= set(fault["measured"]["recovery"])
    assert report["passed"] == all(fault["passed"] for fault in report["faults"])
    # The exit status is the verdict.
    assert (result.returncode == 0) == report["passed"], result.stderr
    markdown = (folder / "report.md").read_text()
    for fault in report["faults"]:
        assert f"## {fault['title']} ({fault['name']}): {'PASS' if fault['passed'] else 'FAIL'}" in markdown
    for label in ("Date", "Machine", "Server", "Durations"):
        assert f"- **{label}**" in markdown
    assert "2 workers x 4 threads" in markdown


@pytest.mark.timeout(420)
def test_quick_run_windows_are_ordered_and_the_probe_saw_each_side_of_every_fault(quick_run):
    _, folder, report = quick_run

    previous_end = 0.0
    for fault in report["faults"]:
        window = fault["window"]
        assert (
            previous_end
            <= window["before_start"]
            < window["start"]
            <= window["end"]
            < window["observed_until"]
        )
        previous_end = window["observed_until"]
        measured = fault["measured"]
        assert measured["probe_before"]["requests"] > 0
        assert measured["probe_after"]["requests"] > 0
        # Open loop at a fixed rate: the probe did not slow down with the server.
        seconds = window["observed_until"] - window["before_start"]
        seen = measured["probe_before"]["requests"] + measured["probe"]["requests"]
        assert seen >= 0.8 * QUICK.probe_rate * seconds
        assert measured["server"]["responses"] > 0
        assert measured["locust"]["requests"] > 0
    with open(folder / "probe.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == report["probe_total"]["requests"]


@pytest.mark.timeout(420)
def test_quick_run_faults_really_happened(quick_run):
    _, folder, report = quick_run
    faults = {fault["name"]: fault for fault in report["faults"]}

    redis = faults["redis-down"]["window"]["events"]
    assert redis["restart_at"] - redis["stopped_at"] >= 0.9 * QUICK.redis_down_seconds
    postgres = faults["postgres-restart"]
    events = postgres["window"]["events"]
    assert events["restart_at"] - events["stopped_at"] >= 0.9 * QUICK.pg_down_seconds
    # The wallet cannot be served from the cache: PostgreSQL's absence was seen by the probe.
    assert postgres["measured"]["probe_during"]["ok"] < postgres["measured"]["probe_during"]["requests"]
    pool = faults["pool-exhaustion"]["window"]["events"]
    assert pool["released_at"] - pool["locked_at"] >= 0.9 * QUICK.lock_seconds
    kill = faults["worker-kill"]["window"]["events"]
    assert kill["new_pid"] not in (0, kill["killed_pid"])
    assert f"Worker (pid:{kill['killed_pid']}) was sent SIGKILL" in (folder / "gunicorn.log").read_text()
    # The pool fault ran on a server of its own, and the regular one came back after it.
    assert [restart["reason"] for restart in report["server_restarts"]] == [
        "gunicorn restarted to the small-pool server",
        "gunicorn restarted back to the regular server",
    ]


@pytest.mark.timeout(420)
def test_quick_run_every_fault_meets_its_expectation(quick_run):
    """Redis down: no 5xx. PostgreSQL restart: only 503s with Retry-After while it is down, full
    service within 5 s of its return. Pool exhausted: fast 503s, nothing hangs, no worker
    timeout. A worker killed: nothing lost beyond its own connections."""
    result, _, report = quick_run

    for fault in report["faults"]:
        failed = [check for check in fault["checks"] if not check["passed"]]
        assert fault["passed"], (fault["name"], failed)
    assert result.returncode == 0


@pytest.mark.timeout(420)
def test_quick_run_leaves_nothing_running_and_no_cluster_behind(quick_run):
    _, folder, report = quick_run

    assert processes_mentioning(str(folder)) == []  # locust and gunicorn log there
    work = Path(settings.BASE_DIR) / ".local" / "chaos" / folder.name
    assert processes_mentioning(str(work)) == []  # PostgreSQL's data directory
    assert not work.exists()
    assert report["cluster"]
    assert processes_mentioning(report["cluster"]) == []
    assert not (Path(report["cluster"]) / "data").exists()

"""Measure each fault's window from what the run recorded, judge it, write report.md/.json.

Three witnesses, all on the run's clock (seconds since it started):
- the probe: every request it sent, with status, latency and Retry-After (to the request);
- the server's access log (all traffic, locust's too; times to the second) for 5xx by status;
- locust's per-second history, for its requests and failures in a window;
plus the gunicorn log for WORKER TIMEOUT lines.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from perf.loadtest.chaos.faults import FAULTS, FaultWindow
from perf.loadtest.chaos.plan import HANG_MARGIN_SECONDS, RECOVERY_LIMIT_SECONDS, ChaosPlan
from perf.loadtest.chaos.probe import ProbeRecord

ACCESS_LINE = re.compile(r"^\[(?P<time>[^\]]+)\] (?P<status>\d{3}) (?P<ms>\d+)ms ")
GUNICORN_LINE = re.compile(
    r"^\[(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4})\] \[\d+\] \[\w+\] (?P<text>.*)"
)


# --- the witnesses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerLine:
    at: float  # the second the line was logged in, on the run's clock
    status: int
    ms: int


def read_access_log(path: Path, wall0: float) -> list[ServerLine]:
    """The access log written with harness.ACCESS_LOG_FORMAT."""
    lines: list[ServerLine] = []
    if not path.exists():
        return lines
    with open(path, errors="replace") as handle:
        for line in handle:
            match = ACCESS_LINE.match(line)
            if match:
                stamp = datetime.strptime(match["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
                lines.append(ServerLine(stamp - wall0, int(match["status"]), int(match["ms"])))
    return lines


def read_gunicorn_events(path: Path, wall0: float) -> list[tuple[float, str]]:
    """(time, text) of the gunicorn master's and workers' own log lines."""
    events: list[tuple[float, str]] = []
    if not path.exists():
        return events
    with open(path, errors="replace") as handle:
        for line in handle:
            match = GUNICORN_LINE.match(line)
            if match:
                stamp = datetime.strptime(match["time"], "%Y-%m-%d %H:%M:%S %z").timestamp()
                events.append((stamp - wall0, match["text"].strip()))
    return events


@dataclass(frozen=True)
class LocustPoint:
    at: float
    requests: int  # cumulative
    failures: int  # cumulative


def read_locust_history(prefix: Path, wall0: float) -> list[LocustPoint]:
    path = Path(f"{prefix}_stats_history.csv")
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [
            LocustPoint(
                int(row["Timestamp"]) - wall0,
                int(row["Total Request Count"]),
                int(row["Total Failure Count"]),
            )
            for row in csv.DictReader(handle)
            if row["Name"] == "Aggregated"
        ]


def read_locust_totals(prefix: Path) -> dict:
    """locust's final totals and its failures by error."""
    totals: dict = {"requests": 0, "failures": 0, "failures_by_error": [], "task_exceptions": 0}
    stats = Path(f"{prefix}_stats.csv")
    if stats.exists():
        with open(stats, newline="") as handle:
            for row in csv.DictReader(handle):
                if row["Name"] == "Aggregated":
                    totals["requests"] = int(row["Request Count"])
                    totals["failures"] = int(row["Failure Count"])
    failures = Path(f"{prefix}_failures.csv")
    if failures.exists():
        with open(failures, newline="") as handle:
            totals["failures_by_error"] = [
                {
                    "request": row["Name"],
                    "error": row["Error"],
                    "count": int(row["Occurrences"]),
                }
                for row in csv.DictReader(handle)
            ]
    # Errors in the locustfile's own code (a task that crashed on a failed response).
    exceptions = Path(f"{prefix}_exceptions.csv")
    if exceptions.exists():
        with open(exceptions, newline="") as handle:
            totals["task_exceptions"] = sum(int(row["Count"]) for row in csv.DictReader(handle))
    return totals


# --- measures -----------------------------------------------------------------------------------


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def probe_window(records: Iterable[ProbeRecord], start: float, end: float) -> dict:
    """What the probe saw for the requests due in [start, end)."""
    chosen = [record for record in records if start <= record.at < end]
    answered = [record for record in chosen if record.status is not None]
    server_errors = Counter(str(record.status) for record in answered if record.status >= 500)
    latencies = [record.latency_ms for record in chosen]
    return {
        "requests": len(chosen),
        "ok": sum(record.ok for record in chosen),
        "status_counts": dict(sorted(Counter(str(record.status) for record in answered).items())),
        "5xx_by_status": dict(sorted(server_errors.items())),
        "5xx": sum(server_errors.values()),
        "500": server_errors.get("500", 0),
        "503_without_retry_after": sum(
            1 for record in answered if record.status == 503 and not record.retry_after
        ),
        "error_codes": dict(Counter(record.code for record in answered if record.status >= 400)),
        "connection_errors": len(chosen) - len(answered),
        "connection_errors_by_kind": dict(Counter(record.code for record in chosen if record.status is None)),
        "max_latency_ms": max(latencies, default=None),
        "p95_latency_ms": _percentile(latencies, 0.95),
    }


def recovery(records: Sequence[ProbeRecord], *, reference: float, until: float) -> dict:
    """Seconds from ``reference`` to the first 2xx and to sustained success: the due time of
    the first request after which every probe request until ``until`` was 2xx (0 when none
    failed after ``reference``; None when the failures never stopped)."""
    after = [record for record in records if reference <= record.at < until]
    first = next((record.at - reference for record in after if record.ok), None)
    failed = [i for i, record in enumerate(after) if not record.ok]
    if not failed:
        sustained: float | None = 0.0
    elif failed[-1] + 1 < len(after):
        sustained = after[failed[-1] + 1].at - reference
    else:
        sustained = None
    return {
        "first_success_s": _round(first),
        "sustained_success_s": _round(sustained),
        "failures_after_reference": len(failed),
    }


def server_window(lines: Iterable[ServerLine], start: float, end: float) -> dict:
    """Responses the server logged in [start, end); the log has whole seconds, so a line of
    the second before ``start`` counts too (it may have finished after it)."""
    chosen = [line for line in lines if start - 1 <= line.at < end]
    errors = Counter(str(line.status) for line in chosen if line.status >= 500)
    return {
        "responses": len(chosen),
        "5xx_by_status": dict(sorted(errors.items())),
        "5xx": sum(errors.values()),
        "500": errors.get("500", 0),
        "max_ms": max((line.ms for line in chosen), default=None),
    }


def locust_window(points: Sequence[LocustPoint], start: float, end: float) -> dict:
    def cumulative(moment: float) -> LocustPoint:
        earlier = [point for point in points if point.at <= moment]
        return earlier[-1] if earlier else LocustPoint(moment, 0, 0)

    first, last = cumulative(start - 1), cumulative(end)
    return {"requests": last.requests - first.requests, "failures": last.failures - first.failures}


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --- judging ----------------------------------------------------------------------------------


def _check(name: str, measured: object, expected: str, passed: bool) -> dict:
    return {"check": name, "measured": measured, "expected": expected, "passed": bool(passed)}


def _judge(window: FaultWindow, m: dict, plan: ChaosPlan) -> list[dict]:
    probe, server, events = m["probe"], m["server"], window.events
    no_500 = _check(
        "500 responses (probe / server)",
        f"{probe['500']} / {server['500']}",
        "0",
        probe["500"] == 0 and server["500"] == 0,
    )
    no_drop = _check(
        "probe connection errors", probe["connection_errors"], "0", probe["connection_errors"] == 0
    )
    within = f"<= {RECOVERY_LIMIT_SECONDS:g} s"
    sustained = m["recovery"]["sustained_success_s"]
    recovered = _check(
        "full service again (every probe request 2xx) after",
        sustained,
        within,
        sustained is not None and sustained <= RECOVERY_LIMIT_SECONDS,
    )
    retry = _check(
        "probe 503s without Retry-After",
        probe["503_without_retry_after"],
        "0",
        probe["503_without_retry_after"] == 0,
    )
    not_503 = server["5xx"] - server["5xx_by_status"].get("503", 0)
    only_503 = _check("server 5xx other than 503", not_503, "0", not_503 == 0)
    if window.name == "redis-down":
        return [
            _check("probe 5xx", probe["5xx"], "0", probe["5xx"] == 0),
            _check("server 5xx (all traffic)", server["5xx"], "0", server["5xx"] == 0),
            no_drop,
        ]
    if window.name == "postgres-restart":
        early = m["failures_before_outage"]
        return [
            no_500,
            only_503,
            retry,
            no_drop,
            _check("probe failures due before PostgreSQL was stopped", early, "0", early == 0),
            recovered,
        ]
    if window.name == "pool-exhaustion":
        limit_ms = plan.statement_timeout_ms + HANG_MARGIN_SECONDS * 1000
        slowest = probe["max_latency_ms"] or 0
        return [
            no_500,
            only_503,
            retry,
            no_drop,
            _check("max probe latency (ms)", slowest, f"<= {limit_ms:g}", slowest <= limit_ms),
            _check("gunicorn WORKER TIMEOUT", m["worker_timeouts"], "0", m["worker_timeouts"] == 0),
            recovered,
        ]
    # worker-kill
    lost = probe["connection_errors"] + probe["5xx"] + m["locust"]["excess_failures"]
    respawn = _round(events["worker_count_back_at"] - window.start)
    return [
        _check(
            "lost requests (probe errors + probe 5xx + locust failures over baseline)",
            lost,
            f"<= {events['connections_held']} (connections the worker held)",
            lost <= int(events["connections_held"]),
        ),
        _check("server 5xx (all traffic)", server["5xx"], "0", server["5xx"] == 0),
        _check("seconds until the worker count is back", respawn, within, respawn <= RECOVERY_LIMIT_SECONDS),
    ]


# The moment service should come back from: the dependency back, the lock released.
REFERENCE_EVENT = {
    "redis-down": "answering_at",
    "postgres-restart": "accepting_at",
    "pool-exhaustion": "released_at",
    "worker-kill": "worker_count_back_at",
}


def measure_fault(
    window: FaultWindow,
    *,
    records: Sequence[ProbeRecord],
    server_lines: Sequence[ServerLine],
    gunicorn_events: Sequence[tuple[float, str]],
    locust_points: Sequence[LocustPoint],
    plan: ChaosPlan,
) -> dict:
    """Every figure of one fault, its checks and its verdict."""
    start, end, until = window.start, window.end, window.observed_until
    baseline = locust_window(locust_points, window.before_start, start)
    during_locust = locust_window(locust_points, start, until)
    before_seconds = max(start - window.before_start, 1e-9)
    expected_failures = baseline["failures"] / before_seconds * (until - start)
    measured = {
        "probe": probe_window(records, start, until),
        "probe_before": probe_window(records, window.before_start, start),
        "probe_during": probe_window(records, start, end),
        "probe_after": probe_window(records, end, until),
        "server": server_window(server_lines, start, until),
        "locust": during_locust
        | {
            "baseline_failures": baseline["failures"],
            "excess_failures": max(0, during_locust["failures"] - math.ceil(expected_failures)),
        },
        "worker_timeouts": sum(
            1 for at, text in gunicorn_events if "WORKER TIMEOUT" in text and start - 1 <= at < until
        ),
        "recovery": recovery(
            records, reference=float(window.events[REFERENCE_EVENT[window.name]]), until=until
        ),
        # Errors "only while it is down": the outage begins when the stop does.
        "failures_before_outage": sum(
            1 for record in records if window.before_start <= record.at < start and not record.ok
        ),
    }
    checks = _judge(window, measured, plan)
    fault = FAULTS[window.name]
    return {
        "name": window.name,
        "title": fault.title,
        "expectation": fault.expectation,
        "window": window.as_json(),
        "measured": measured,
        "checks": checks,
        "passed": all(check["passed"] for check in checks),
    }


# --- rendering --------------------------------------------------------------------------------


def _by_status(counts: dict[str, int]) -> str:
    return ", ".join(f"{status}: {count}" for status, count in counts.items()) or "none"


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _recovery_text(fault: dict) -> str:
    events = fault["window"]["events"]
    if fault["name"] == "worker-kill":
        return f"worker count back {events['worker_count_back_at'] - fault['window']['start']:.2f} s"
    rec = fault["measured"]["recovery"]
    return f"first 2xx {_seconds(rec['first_success_s'])}, sustained {_seconds(rec['sustained_success_s'])}"


def _timeline(fault: dict) -> str:
    window = fault["window"]
    start = window["start"]
    moments = [f"start +{start:.1f} s"]
    for name, value in window["events"].items():
        if name.endswith("_at"):
            moments.append(f"{name.removesuffix('_at').replace('_', ' ')} +{value - start:.2f} s")
        else:
            moments.append(f"{name.replace('_', ' ')}: {value}")
    moments.append(f"observed until +{window['observed_until'] - start:.1f} s")
    return "; ".join(moments)


def render_markdown(result: dict) -> str:
    faults = result["faults"]
    held = sum(fault["passed"] for fault in faults)
    verdict = "PASS" if result["passed"] else "FAIL"
    env = result["environment"]
    out = [
        f"# Chaos run {result['started_at'][:19].replace('T', ' ')}: {verdict} "
        f"({held} of {len(faults)} expectations held)",
        "",
        "## Environment",
        "",
        *[f"- **{label}**: {value}" for label, value in env.items()],
        "",
        "## Summary",
        "",
        "| fault | probe 5xx by status | 500s (probe / server) | server 5xx by status | connection errors "
        "| recovery | max latency | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fault in faults:
        probe, server = fault["measured"]["probe"], fault["measured"]["server"]
        out.append(
            f"| {fault['title']} | {_by_status(probe['5xx_by_status'])} | {probe['500']} / {server['500']} "
            f"| {_by_status(server['5xx_by_status'])} | {probe['connection_errors']} "
            f"| {_recovery_text(fault)} | {_ms(probe['max_latency_ms'])} "
            f"| {'PASS' if fault['passed'] else '**FAIL**'} |"
        )
    for fault in faults:
        m = fault["measured"]
        out += [
            "",
            f"## {fault['title']} ({fault['name']}): {'PASS' if fault['passed'] else 'FAIL'}",
            "",
            f"Expectation: {fault['expectation']}",
            "",
            f"Timeline (run clock): {_timeline(fault)}.",
            "",
            "| probe window | requests | 2xx | 5xx by status | error codes | connection errors | p95 | max |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for label, key in [
            ("before (baseline)", "probe_before"),
            ("during the fault", "probe_during"),
            ("after (recovery period)", "probe_after"),
        ]:
            p = m[key]
            out.append(
                f"| {label} | {p['requests']} | {p['ok']} | {_by_status(p['5xx_by_status'])} "
                f"| {_by_status(p['error_codes'])} | {p['connection_errors']} "
                f"| {_ms(p['p95_latency_ms'])} | {_ms(p['max_latency_ms'])} |"
            )
        rec = m["recovery"]
        out += [
            "",
            f"- Server (access log, all traffic, whole window): {m['server']['responses']} responses, "
            f"5xx by status: {_by_status(m['server']['5xx_by_status'])}; "
            f"slowest {_ms(m['server']['max_ms'])}.",
            f"- Locust in the window: {m['locust']['requests']} requests, {m['locust']['failures']} failures "
            f"({m['locust']['baseline_failures']} in the baseline stretch; {m['locust']['excess_failures']} "
            "over the baseline rate).",
            f"- Probe recovery: first 2xx {_seconds(rec['first_success_s'])}, sustained success "
            f"{_seconds(rec['sustained_success_s'])} after the reference moment; "
            f"{rec['failures_after_reference']} failures after it.",
            f"- gunicorn WORKER TIMEOUT lines in the window: {m['worker_timeouts']}.",
            "",
            "| check | measured | expected | result |",
            "|---|---|---|---|",
            *[
                f"| {c['check']} | {c['measured']} | {c['expected']} "
                f"| {'pass' if c['passed'] else '**FAIL**'} |"
                for c in fault["checks"]
            ],
        ]
    if result["server_restarts"]:
        out += ["", "## Server restarts (not judged)", ""]
        for restart in result["server_restarts"]:
            p = restart["probe"]
            out.append(
                f"- {restart['reason']}: +{restart['start']:.1f} s to +{restart['end']:.1f} s; the probe saw "
                f"{p['requests']} requests, {p['ok']} 2xx, {p['connection_errors']} connection errors."
            )
    locust = result["locust"]
    out += [
        "",
        "## Traffic over the whole run",
        "",
        f"- Probe: {result['probe_total']['requests']} requests, {result['probe_total']['ok']} 2xx.",
        f"- Locust: {locust['requests']} requests, {locust['failures']} failures; "
        f"{locust['task_exceptions']} exceptions in locust tasks (locust_exceptions.csv).",
        *[
            f"  - {row['request']}: {row['error']} x {row['count']}"
            for row in locust["failures_by_error"][:15]
        ],
        f"- gunicorn WORKER TIMEOUT lines over the whole run: {result['worker_timeouts_total']}.",
        "",
        "## Files",
        "",
        "`report.json` (every figure), `probe.csv` (every probe request), `access.log` and `gunicorn.log` "
        "(the server), `locust_*.csv` and `locust.log`, `postgres.log`, `redis.log`, `setup.log`.",
        "",
    ]
    return "\n".join(out)

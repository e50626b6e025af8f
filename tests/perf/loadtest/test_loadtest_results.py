"""Threshold evaluation and report rendering, on statistics recorded from a real run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from perf.loadtest.profiles import PROFILES, Thresholds
from perf.loadtest.report import bottlenecks, render_chart, render_comparison, render_markdown
from perf.loadtest.results import EndpointStats, HistoryPoint, RunStats, evaluate, load_stats, passed

DATA = Path(__file__).with_name("data")
USER_CLASSES = {
    "BaselineUser",
    "FlowUser",
    "BrowserUser",
    "BrowserPagesUser",
    "SearcherUser",
    "ViewerUser",
    "MemberUser",
    "ChurnReader",
    "ChurnWriter",
}


@pytest.fixture
def recorded(tmp_path):
    """The CSV files of a 5-user, 20-second baseline run (65 requests, no failures)."""
    for kind in ("stats", "stats_history", "failures"):
        shutil.copy(DATA / f"baseline_{kind}.csv", tmp_path / f"run_{kind}.csv")
    return load_stats(tmp_path / "run")


def by_metric(checks) -> dict[str, str]:
    return {check.metric: check.status for check in checks}


def test_recorded_statistics_are_read_back(recorded):
    assert recorded.total.requests == 65
    assert recorded.total.failures == 0
    assert recorded.total.p95_ms == 43
    assert recorded.max_users == 5
    assert {e.name for e in recorded.endpoints} >= {
        "GET /api/bounties",
        "GET /api/bounties/{id}",
        "GET /api/wallet",
    }
    assert 2.5 < recorded.steady_rps < 4.5
    # Each point of the history keeps p50 and p99 beside p95, for the chart's three lines.
    second = recorded.history[1]
    assert (second.users, second.p50_ms, second.p95_ms, second.p99_ms) == (5, 220, 280, 280)


def test_a_run_within_every_threshold_passes(recorded):
    checks = evaluate(recorded, Thresholds(p95_ms=300, p99_ms=1000, error_rate=0.01, min_rps=1))

    assert by_metric(checks) == {
        "p95 Response Time": "pass",
        "p99 Response Time": "pass",
        "Error Rate": "pass",
        "Throughput": "pass",
    }  # no "Max VUs Handled" row below the guide's 200 users
    assert passed(checks)


def test_max_vus_handled_is_judged_from_200_users():
    def run(users: int, failures: int) -> RunStats:
        total = EndpointStats("Aggregated", 1000, failures, 10, 20, 30, 15, 100)
        point = HistoryPoint(elapsed_s=1, users=users, rps=100, failures_per_s=0, p95_ms=20)
        return RunStats(total=total, endpoints=[], history=[point])

    def row(stats: RunStats) -> str:
        return by_metric(evaluate(stats, Thresholds())).get("Max VUs Handled", "absent")

    assert (row(run(200, 5)), row(run(200, 10)), row(run(199, 0))) == ("pass", "fail", "absent")


def test_each_broken_threshold_fails_the_run(recorded):
    checks = evaluate(
        recorded,
        Thresholds(
            p95_ms=40, p99_ms=200, error_rate=0.01, min_rps=500, endpoint_p95_ms={"GET /api/wallet": 100}
        ),
    )

    statuses = by_metric(checks)
    assert statuses["p95 Response Time"] == "fail"
    assert statuses["p99 Response Time"] == "fail"
    assert statuses["Throughput"] == "fail"
    assert statuses["p95 GET /api/wallet"] == "fail"
    assert statuses["Error Rate"] == "pass"
    assert not passed(checks)


def test_errors_above_the_rate_fail(recorded):
    recorded.total = recorded.total.__class__(**{**recorded.total.__dict__, "failures": 2})

    assert by_metric(evaluate(recorded, Thresholds()))["Error Rate"] == "fail"


def test_a_run_without_requests_fails_every_check(tmp_path):
    (tmp_path / "empty_stats.csv").write_text(
        (DATA / "baseline_stats.csv").read_text().splitlines()[0] + "\n"
    )

    checks = evaluate(load_stats(tmp_path / "empty"), Thresholds(p99_ms=None, min_rps=None))

    statuses = by_metric(checks)
    assert statuses["p95 Response Time"] == statuses["Error Rate"] == statuses["Requests"] == "fail"
    assert not passed(checks)


def test_an_endpoint_threshold_without_traffic_fails(recorded):
    checks = evaluate(recorded, Thresholds(endpoint_p95_ms={"GET /api/bounties/search": 1000}))

    assert by_metric(checks)["p95 GET /api/bounties/search"] == "fail"


def test_the_report_renders_the_guide_template_from_a_recorded_run(tmp_path):
    result = json.loads((DATA / "baseline_report.json").read_text())

    markdown = render_markdown(result)

    for heading in ["**Date**", "**Environment**", "**Configuration**", "**Virtual users**", "**Duration**",
                    "**Ramp-up**", "## Bottlenecks identified", "## Actions taken", "## Notes"]:  # fmt: skip
        assert heading in markdown
    assert "| Metric | Value | Target | Status |" in markdown
    assert "| p95 Response Time | 43 ms | < 300 ms | pass |" in markdown
    assert "| GET /api/bounties/{id} | 21 | 0 |" in markdown
    assert "| Server CPU | 1 % | 2 % |" in markdown
    render_chart(result, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failures_are_listed_by_endpoint_and_reason_and_named_for_people():
    result = json.loads((DATA / "baseline_report.json").read_text())
    assert "## Failures" not in render_markdown(result)  # none: no section
    result["stats"]["failures"] = [
        {"Method": "POST", "Name": "POST /api/wallet/deposits", "Error": "LocustBadStatusCode(code=502)",
         "Occurrences": "3"},
        {"Method": "GET", "Name": "GET /api/bounties", "Error": "CatchResponseError('429')",
         "Occurrences": "2"},
        {"Method": "GET", "Name": "GET /api/bounties/search", "Error": "ConnectionResetError(104, 'a | b')",
         "Occurrences": "1"},
    ]  # fmt: skip

    result["bottlenecks"] = bottlenecks(result)
    markdown = render_markdown(result)

    assert (
        "## Failures\n\n| Endpoint | Reason | Count |\n|---|---|---|\n"
        "| POST /api/wallet/deposits | HTTP 502 | 3 |\n"
        "| GET /api/bounties | HTTP 429 | 2 |\n"
        "| GET /api/bounties/search | ConnectionResetError(104, 'a / b') | 1 |\n"
    ) in markdown
    assert "Top error: 3 x POST /api/wallet/deposits: HTTP 502." in markdown


def test_bottlenecks_cite_the_figures_that_triggered_them():
    result = json.loads((DATA / "baseline_report.json").read_text())
    result["resources"]["server_cpu_percent"] = {"avg": 91.0, "max": 100.0}
    result["redis"]["hit_ratio"] = None
    result["checks"] = [{"metric": "Throughput", "value": "4 RPS", "target": "> 500 RPS", "status": "fail"}]

    found = bottlenecks(result)

    assert found[0].startswith("Server CPU-bound: 91 %")
    assert any("exported no cache counters" in line for line in found)
    assert any("--think-time 0" in line for line in found)


def test_comparison_table_shows_the_change(tmp_path):
    before = json.loads((DATA / "baseline_report.json").read_text())
    after = json.loads(json.dumps(before))
    after["stats"]["total"]["p95_ms"] = 20.0

    table = render_comparison(before, after, 1, 2)

    assert "| p95 ms | 43 | 20 | -53 % |" in table
    assert "| p95 GET /api/bounties |" in table


def test_every_profile_has_stages_and_a_user_mix():
    for profile in PROFILES.values():
        assert profile.stages and profile.duration > 0
        assert set(profile.users_mix) | set(profile.with_writes(1).fixed_users) <= USER_CLASSES
    single = PROFILES["flow"].overridden(users=3, duration=15, think_time=0)
    assert [(s.users, s.seconds) for s in single.stages] == [(3, 15)]
    assert single.think_time == (0, 0)


def test_a_saturated_machine_is_named_with_each_consumer():
    result = json.loads((DATA / "baseline_report.json").read_text())
    result["resources"] |= {
        "server_cpu_percent": {"avg": 55.0, "max": 70.0},
        "database_cpu_percent": {"avg": 38.0, "max": 45.0},
        "machine_cpu_percent": {"avg": 97.0, "max": 100.0},
        "generator_cpu_percent_of_core": {"avg": 10.0, "max": 12.0},
    }

    found = bottlenecks(result)

    assert found[0] == (
        "Machine CPU saturated: 97 % on average (server 55 %, PostgreSQL 38 %, "
        "generator 5 % of the machine): latency here is queueing for the CPU."
    )
    assert "PostgreSQL busy: 38 % of the machine on average." in found
    markdown = render_markdown(result | {"bottlenecks": found})
    # One unit in the table: a share of the machine, the generator's core figures halved.
    assert "CPU is a share of the whole machine (2 cores): 100 % is every core busy." in markdown
    assert "| PostgreSQL CPU | 38 % | 45 % |" in markdown
    assert "| Server CPU | 55 % | 70 % |" in markdown
    assert "| Load generator CPU | 5 % | 6 % |" in markdown


def test_comparison_reads_as_people_read_the_rounded_figures():
    before = json.loads((DATA / "baseline_report.json").read_text())
    after = json.loads(json.dumps(before))
    before.pop("response_cache", None)  # a run from before the response-cache section
    after["response_cache"] = {"hit_ratio": 0.993, "by_prefix": {}}
    before["resources"]["database_cpu_percent"] = {"avg": 0.37, "max": 1.0}
    after["resources"]["database_cpu_percent"] = {"avg": 3.0, "max": 4.0}
    after["stats"]["total"]["p99_ms"] = before["stats"]["total"]["p99_ms"] + 0.2

    table = render_comparison(before, after, "20261127-001055-baseline", "3 (20261128-110030-baseline)")

    assert "| Response cache hit ratio % | n/a | 99.3 | - |" in table
    assert "| PostgreSQL CPU avg % | 0 | 3 | - |" in table  # not "+705 %" from a hidden 0.37
    p99 = round(before["stats"]["total"]["p99_ms"])
    assert f"| p99 ms | {p99} | {p99} | 0 % |" in table  # never "-0 %" or "+0 %"
    assert table.startswith("# Comparison: run 20261127-001055-baseline (baseline")
    assert "-> run 3 (20261128-110030-baseline) (baseline" in table


def test_the_admin_compare_page_shows_n_a_for_what_a_run_did_not_measure():
    from perf.loadtest.pages import comparison_rows

    before = json.loads((DATA / "baseline_report.json").read_text())
    after = json.loads(json.dumps(before))
    before.pop("response_cache", None)
    after["response_cache"] = {"hit_ratio": 0.993, "by_prefix": {}}

    rows = {row["label"]: row for row in comparison_rows(before, after)}

    cache = rows["Response cache hit ratio %"]
    assert (cache["before"], cache["after"], cache["change"], cache["trend"]) == ("n/a", "99.30", "-", "")

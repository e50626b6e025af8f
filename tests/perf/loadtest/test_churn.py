"""The churn profile: per-second figures, options, and a short real run against gunicorn that
posts bounties for real while readers read."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from bounties.models import Bounty, Category
from perf.loadtest.churn import (
    CATEGORIES,
    SERIES_COLUMNS,
    ReadSeconds,
    baseline_checks,
    cache_series,
    counter_increase,
    merge,
    percentile,
)
from perf.loadtest.profiles import PROFILES, writer_plan
from perf.loadtest.report import render_comparison, render_markdown
from perf.loadtest.stored import run_from_result
from perf.loadtest.vocabulary import VOCABULARY
from perf.models import LoadTestRun
from tests.conftest import gunicorn_server, subprocess_env
from tests.factories import UserFactory
from tests.perf.loadtest.test_loadtest_command import manage

DATA = Path(__file__).with_name("data")


def counters(hits: float, stale: float, misses: float, prefix: str = "bounty_list") -> dict:
    return {prefix: {"hits": hits, "stale": stale, "misses": misses}}


def test_percentiles_are_nearest_rank_over_exact_values():
    values = [float(ms) for ms in range(100, 0, -1)]  # 1..100 ms, unsorted

    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7
    assert percentile([], 0.95) is None


def test_reads_are_bucketed_by_the_second_they_completed_and_writes_counted_apart():
    seconds = ReadSeconds()
    for ms in range(1, 101):
        seconds.record(method="GET", name="GET /api/bounties", response_time=ms, failed=False, at=1000.2)
    seconds.record(method="GET", name="GET /api/bounties/{id}", response_time=900, failed=True, at=1001.9)
    seconds.record(method="POST", name="POST /api/bounties", response_time=3000, failed=False, at=1001.5)
    seconds.record(method="POST", name="POST /api/bounties", response_time=5, failed=True, at=1003.0)
    seconds.spawned_at = 1000.5

    data = seconds.as_json()

    first, second, third, fourth = data["seconds"]
    assert [row["epoch"] for row in data["seconds"]] == [1000, 1001, 1002, 1003]  # gaps kept
    assert (first["reads"], first["read_p50_ms"], first["read_p95_ms"], first["read_p99_ms"]) == (
        100,
        50,
        95,
        99,
    )
    assert (second["reads"], second["read_failures"], second["read_p99_ms"], second["writes"]) == (
        1,
        1,
        900,
        1,
    )
    assert (third["reads"], third["read_p99_ms"]) == (0, None)
    assert (fourth["writes"], fourth["write_failures"]) == (0, 1)
    # Steady: from the first whole second after spawning (1001) to before the last (1003).
    assert data["steady"] == {
        "from_epoch": 1001, "to_epoch": 1003, "read_p50_ms": 900, "read_p95_ms": 900, "read_p99_ms": 900,
    }  # fmt: skip


def test_cache_increases_per_second_sum_prefixes_and_never_go_negative_on_a_worker_restart():
    scrapes = [
        (100, counters(10, 0, 5) | counters(4, 0, 0, "bounty_detail")),
        (101, counters(40, 2, 8) | counters(10, 0, 0, "bounty_detail")),
        # A worker restarted outside multiprocess mode: its counters start again from 0.
        (102, counters(3, 0, 1) | counters(12, 0, 0, "bounty_detail")),
        (103, None),  # scrape failed: 102's increase runs to 104
        (104, counters(9, 1, 1) | counters(12, 0, 0, "bounty_detail") | counters(2, 0, 2, "search")),
    ]

    series = cache_series(scrapes)

    assert series == {
        100: {"hits": 36, "stale": 2, "misses": 3},
        101: {"hits": 5, "stale": 0, "misses": 1},
        102: {"hits": 8, "stale": 1, "misses": 2},
    }
    assert all(count >= 0 for counts in series.values() for count in counts.values())
    assert counter_increase(None, counters(3, 1, 0)) == {"hits": 3, "stale": 1, "misses": 0}


def test_the_churn_section_joins_reads_writes_and_hit_ratios_by_second():
    reads = {
        "seconds": [
            {
                "epoch": epoch,
                "reads": reads,
                "read_failures": 0,
                "read_p50_ms": 5.0,
                "read_p95_ms": 20.0,
                "read_p99_ms": 40.0,
                "writes": writes,
                "write_failures": 0,
            }
            for epoch, reads, writes in [(500, 50, 2), (501, 100, 2), (502, 120, 1), (503, 30, 0)]
        ],
        "steady": {
            "from_epoch": 501,
            "to_epoch": 503,
            "read_p50_ms": 5,
            "read_p95_ms": 21,
            "read_p99_ms": 41,
        },
    }
    cache = {500: {"hits": 1, "stale": 0, "misses": 3}, 501: {"hits": 90, "stale": 5, "misses": 5},
             502: {"hits": 100, "stale": 0, "misses": 0}}  # fmt: skip

    churn = merge(reads, cache, 2.0, 4)

    assert [row["second"] for row in churn["seconds"]] == [0, 1, 2, 3]
    assert churn["seconds"][1]["hit_ratio"] == 0.95
    assert churn["seconds"][3]["hit_ratio"] is None and churn["seconds"][3]["hits"] is None
    assert churn["steady_seconds"] == [1, 2]
    assert churn["read_rps"] == 110
    assert churn["writes"] == {"count": 5, "failures": 0, "per_second": 1.5}
    assert churn["hit_ratio"] == pytest.approx(195 / 200)
    assert (churn["read_p95_ms"], churn["read_p99_ms"]) == (21, 41)
    assert set(churn["seconds"][0]) == set(SERIES_COLUMNS)


def test_the_issues_targets_are_judged_against_a_baseline_run():
    baseline = {"read_rps": 800.0, "read_p99_ms": 100.0}
    good = {"read_rps": 730.0, "read_p99_ms": 150.0, "hit_ratio": 0.975, "read_failures": 0,
            "writes": {"failures": 0}}  # fmt: skip
    bad = good | {"read_rps": 700.0, "read_p99_ms": 151.0, "hit_ratio": 0.96, "read_failures": 1}

    assert {check.status for check in baseline_checks(good, baseline)} == {"pass"}
    assert [check.status for check in baseline_checks(bad, baseline)] == ["fail"] * 4


@pytest.mark.parametrize(
    ("writes_per_second", "writers", "each"),
    [(0, 0, 0.0), (0.3, 1, 0.3), (2, 4, 0.5), (10, 20, 0.5), (3.5, 7, 0.5)],
)
def test_writers_are_a_fixed_count_that_shares_the_total_rate(writes_per_second, writers, each):
    assert writer_plan(writes_per_second) == (writers, pytest.approx(each))
    profile = PROFILES["churn"].with_writes(writes_per_second)
    assert profile.fixed_users == ({"ChurnWriter": writers} if writers else {})
    assert profile.users_mix == {"ChurnReader": 1}


def test_the_churn_profile_is_50_readers_for_90_seconds_without_an_absolute_rps_target():
    profile = PROFILES["churn"]

    assert (profile.max_users, profile.duration, profile.think_time) == (50, 90, (0.0, 0.0))
    assert profile.ramp_up_seconds() <= 10
    assert profile.thresholds.min_rps is None
    assert (profile.thresholds.p95_ms, profile.thresholds.p99_ms) == (500, 1000)
    # --users sets the readers; the writers stay as many as the rate needs.
    overridden = profile.overridden(users=8, duration=5).with_writes(2)
    assert (overridden.max_users, overridden.duration, overridden.fixed_users) == (8, 5, {"ChurnWriter": 4})


def test_readers_and_writers_use_the_seeded_categories():
    assert set(CATEGORIES) == set(VOCABULARY)
    assert set(CATEGORIES) <= set(Category.values)


@pytest.mark.parametrize("value", ["-1", "ten", "nan", "inf"])
def test_a_writes_per_second_that_is_not_a_rate_is_one_clear_error(value):
    with pytest.raises(CommandError, match=r"--writes-per-second .*a number >= 0"):
        call_command("loadtest", "churn", "--writes-per-second", value, "--host", "http://127.0.0.1:9")


def test_writes_per_second_belongs_to_the_churn_profile_only():
    with pytest.raises(CommandError, match="churn profile only"):
        call_command("loadtest", "normal", "--writes-per-second", "2", "--host", "http://127.0.0.1:9")


@pytest.mark.django_db
def test_a_baseline_must_be_a_stored_churn_run():
    with pytest.raises(CommandError, match="no churn run 999999"):
        call_command("loadtest", "churn", "--baseline", "999999", "--host", "http://127.0.0.1:9")


def test_a_run_without_a_churn_section_renders_no_churn_tables_and_compares_with_dashes():
    before = json.loads((DATA / "baseline_report.json").read_text())
    after = json.loads(json.dumps(before))
    after["churn"] = merge(
        {"seconds": [{"epoch": 1, "reads": 10, "read_failures": 0, "read_p50_ms": 1, "read_p95_ms": 2,
                      "read_p99_ms": 3, "writes": 1, "write_failures": 0}], "steady": None},
        {1: {"hits": 9, "stale": 0, "misses": 1}}, 1.0, 2,
    )  # fmt: skip

    assert "## Churn" not in render_markdown(before)
    assert "| 0 | 10 | 1 | 2 | 3 | 9 | 0 | 1 | 90.0% | 1 | 0 |" in render_markdown(after)
    assert "| Writes/s requested | - | 1 | - |" in render_comparison(before, after, 1, 2)


@pytest.mark.django_db(transaction=True)
def test_a_short_churn_run_posts_at_the_rate_and_reports_every_second(tmp_path):
    tokens = tmp_path / "tokens.txt"
    small = ["--users", "40", "--bounties", "300", "--transactions", "1000", "--messages", "200"]
    call_command("seed_data", *small, "--conversations", "20", "--tokens", "20", "--tokens-file", str(tokens))
    before = Bounty.objects.count()
    connection.close()  # the server and the command below use their own connections
    no_limits = {f"RATELIMIT_{tier.upper()}": "100000/m" for tier in settings.RATE_LIMITS}
    with gunicorn_server(tmp_path, **no_limits) as server:
        started = time.monotonic()
        result = manage(
            "loadtest", "churn", "--host", server.url, "--users", "5", "--duration", "8",
            "--spawn-rate", "5", "--writes-per-second", "2", "--p95", "5000", "--p99", "10000",
            "--server-pid", str(server.pid), "--tokens-file", str(tokens),
            "--report-dir", str(tmp_path / "reports"),
            env=subprocess_env(**no_limits),
        )  # fmt: skip
        elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    run = LoadTestRun.objects.get()
    churn = run.data["churn"]
    posted = Bounty.objects.count() - before
    # 2 posts/s for the 8 s the writers ran, give or take the ones in flight at either end.
    assert 10 <= posted <= 22, posted
    assert Bounty.objects.filter(title__contains="posted by the churn run").count() == posted
    assert churn["writes"]["count"] == posted and churn["writes"]["failures"] == 0
    assert churn["writers"] == 4 and churn["writes_per_second_requested"] == 2
    assert 1.0 <= churn["writes"]["per_second"] <= 3.0
    assert churn["read_rps"] > 0 and churn["read_p99_ms"] >= churn["read_p95_ms"] > 0
    rows = churn["seconds"]
    assert len(rows) >= 7
    ratios = [row["hit_ratio"] for row in rows if row["hit_ratio"] is not None]
    assert len(ratios) >= 5 and all(0 <= ratio <= 1 for ratio in ratios)
    assert all(row["reads"] > 0 for row in rows[1:-1])
    assert 0 < churn["hit_ratio"] <= 1
    report_dir = Path(run.report_path).parent
    markdown = (report_dir / "report.md").read_text()
    assert "## Churn" in markdown and "| Writes requested | 2 posts/s by 4 writers (0.5/s each) |" in markdown
    assert (
        "| s | Reads | p50 ms | p95 ms | p99 ms | Hits | Stale | Misses | Hit ratio | Writes | Failed |"
        in markdown
    )
    with open(report_dir / "churn_seconds.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)
    endpoints = {endpoint["name"] for endpoint in run.data["stats"]["endpoints"]}
    assert {
        "GET /api/bounties",
        "GET /api/bounties/{id}",
        "GET /api/bounties/search",
        "POST /api/bounties",
    } == endpoints
    assert elapsed < 30


@pytest.mark.django_db
def test_the_admin_run_page_renders_a_churn_runs_tables(client):
    """A recorded 8-second churn run at 2 posts/s (the real run above wrote it)."""
    run = run_from_result(json.loads((DATA / "churn_report.json").read_text()))
    run.save()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    html = client.get(f"/admin/perf/loadtestrun/{run.pk}/change/").content.decode()

    report = html[html.index('<details class="lt-report">') :]
    assert "<h2>Churn</h2>" in report and "<h2>Churn per second</h2>" in report
    assert "<td>Writes requested</td>" in report and "<th>Hit ratio</th>" in report
    assert "| s | Reads |" not in html

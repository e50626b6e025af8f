"""The load-test runs in the admin, on runs committed under docs/loadtests/: the list with numbers
for people, a run's page (charts from the stored series, the report as HTML, the run's top
queries, editable notes, no JSON dump), two runs compared, and who may see them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client

from perf.loadtest.pages import percent, rate, whole
from perf.loadtest.stored import StoredRunError, read_result, run_from_result, stored_run
from perf.models import LoadTestRun
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

RUNS = Path(settings.BASE_DIR) / "docs" / "loadtests"
CHANGELIST = "/admin/perf/loadtestrun/"
COMPARE = f"{CHANGELIST}compare/"


def change_url(run: LoadTestRun) -> str:
    return f"{CHANGELIST}{run.pk}/change/"


@pytest.fixture
def runs() -> dict[str, LoadTestRun]:
    """Three committed runs: the first baseline (passed, 6.1 RPS), peak before caching (failed
    its RPS target) and peak after caching whose users ignored the rate-limit headers (81 x 429)."""
    folders = {
        "baseline": "20261127-001055-baseline",
        "before": "20261127-013339-peak",
        "after": "20261127-015348-peak",
    }
    stored = {}
    for name, folder in folders.items():
        run = stored_run(RUNS / folder)
        run.save()
        stored[name] = run
    return stored


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def charts(html: str) -> dict[str, str]:
    """Each chart of a page by its title."""
    return dict(
        re.findall(r'<svg class="perf-chart" role="img" aria-label="([^"]*)"(.*?)</svg>', html, flags=re.S)
    )


def test_the_list_shows_every_run_with_its_verdict_and_numbers_rounded_for_people(staff, runs):
    response = staff.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert all(f">#{run.pk}<" in html for run in runs.values())
    # baseline: 6.102551017857145 RPS, p95 16 ms; peak after: 0.2280148631910821 % errors
    assert '<td class="field-throughput">6.1</td>' in html
    assert "6.102551017857145" not in html and "0.002280148631910821" not in html
    assert '<td class="field-errors">0.23</td>' in html
    assert '<td class="field-p95">140</td>' in html  # peak before
    assert '<span class="perf-level perf-level-ok">pass</span>' in html
    assert (
        '<span class="perf-level perf-level-critical">fail</span> <span class="lt-failed">RPS</span>' in html
    )


def test_the_list_does_not_load_each_runs_stored_data(staff, runs):
    response = staff.get(CHANGELIST)

    listed = response.context["cl"].result_list
    assert len(listed) == 3
    assert all("data" in run.get_deferred_fields() for run in listed)


def test_a_run_page_draws_its_stored_series_with_the_profiles_threshold_lines(staff, runs):
    run = runs["after"]

    html = staff.get(change_url(run)).content.decode()

    drawn = charts(html)
    rps, users = drawn["Requests per second"], drawn["Virtual users"]
    latency, failures = (
        drawn["Response time (locust&#x27;s moving window)"],
        drawn["Failed requests (% of requests)"],
    )
    points = len(run.data["stats"]["history"])  # 181, one a second
    assert rps.count("<circle") == points and users.count("<circle") == points
    assert latency.count("<circle") == 3 * points  # p50 and p99 from locust's CSV beside the report
    assert "p95 target: 500 ms" in latency and "p99 target: 1,000 ms" in latency
    assert "RPS target (more is better): 500 rps" in rps
    assert "error-rate target: 1 %" in failures
    assert "failed % at 30 s:" in failures  # the 429s show up in the failures chart
    # p95 peaked near 150 ms under a 500 ms target: the lines would flatten it, so it is drawn
    # again on its own scale, without them.
    zoomed = drawn["Response time, scaled to this run (targets from 500 ms are above)"]
    assert zoomed.count("<circle") == 3 * points and "perf-threshold" not in zoomed


def test_a_run_stored_by_todays_runner_draws_p95_over_time_and_says_p50_and_p99_are_missing(staff):
    # The runner keeps p95 per point only; the folder's CSV is not read for a run in the database.
    run = run_from_result(read_result(RUNS / "20261127-001055-baseline"))
    run.save()

    html = staff.get(change_url(run)).content.decode()

    latency = charts(html)["Response time (locust&#x27;s moving window)"]
    assert latency.count("<circle") == len(run.data["stats"]["history"])
    assert "p95 target: 300 ms" in latency and "p99 target" not in latency  # baseline checks no p99
    assert "This run stored p50 and p99 only as whole-run figures, not over time." in html


def test_a_run_page_renders_the_stored_report_as_html_not_markdown(staff, runs):
    html = staff.get(change_url(runs["after"])).content.decode()

    report = html[html.index('<details class="lt-report">') :]
    assert "<h1>Load test: peak (2026-11-27 01:53 UTC)</h1>" in report
    assert "<th>Metric</th>" in report and "<td>p95 Response Time</td>" in report
    assert "| Metric | Value |" not in html and "## Endpoints" not in html


def test_a_run_page_shows_the_runs_top_queries_failures_and_resources(staff, runs):
    run = runs["after"]

    html = staff.get(change_url(run)).content.decode()

    top = run.data["database"]["top_queries"][0]
    assert f'<td class="num">{top["calls"]:,}</td>' in html
    assert "messaging_conversation" in html
    # failures by endpoint and reason: 73 searches refused by the rate limit, 1.32 % of searches
    assert (
        "<td>GET /api/bounties/search</td><td><code>CatchResponseError(&#x27;429&#x27;)</code></td>" in html
    )
    assert '<td class="num">73</td><td class="num">1.32</td>' in html
    assert "Server CPU (all gunicorn processes)" in html and '<td class="num">477 MB</td>' in html
    assert 'Response cache: <span class="perf-level perf-level-ok">99.35 %</span>' in html


def test_the_run_page_dumps_no_stored_json_and_edits_nothing_but_notes(staff, runs):
    html = staff.get(change_url(runs["after"])).content.decode()

    assert '"elapsed_s"' not in html and "&quot;elapsed_s&quot;" not in html
    assert "<pre style" not in html
    fields = set(re.findall(r'<(?:textarea|input|select)[^>]*name="(\w+)"', html))
    assert fields == {"csrfmiddlewaretoken", "notes", "before", "after"}  # notes; the compare form


def test_markdown_in_a_stored_run_cannot_put_html_or_script_links_into_the_page(staff, runs):
    run = runs["baseline"]
    run.data["markdown"] = "| step |\n|---|\n| <script>alert(1)</script> |\n"
    run.data["actions"] = "[click](javascript:alert(1)) ![pixel](https://example.com/p.png)"
    run.save()

    html = staff.get(change_url(run)).content.decode()

    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html and "<img" not in html


def test_staff_can_save_a_runs_notes_and_the_change_is_logged(staff, runs):
    run = runs["after"]

    response = staff.post(change_url(run), {"notes": "81 x 429: users ignored X-RateLimit headers"})

    assert response.status_code == 302 and response["Location"] == change_url(run)
    run.refresh_from_db()
    assert run.notes == "81 x 429: users ignored X-RateLimit headers"
    assert run.data["checks"]  # the stored data is untouched
    entry = LogEntry.objects.get(object_id=str(run.pk))
    assert entry.action_flag == CHANGE and "Notes" in entry.get_change_message()


def test_staff_who_may_only_view_runs_see_the_notes_but_cannot_change_them(runs):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_loadtestrun"))
    client = Client()
    client.force_login(viewer)
    run = runs["after"]

    page = client.get(change_url(run))
    refused = client.post(change_url(run), {"notes": "overwritten"})

    assert page.status_code == 200 and 'name="notes"' not in page.content.decode()
    assert refused.status_code == 403
    run.refresh_from_db()
    assert run.notes != "overwritten"


def test_the_compare_action_shows_two_selected_runs_side_by_side(staff, runs):
    before, after = runs["before"], runs["after"]

    response = staff.post(
        CHANGELIST, {"action": "compare_runs", "_selected_action": [after.pk, before.pk]}, follow=True
    )

    assert response.redirect_chain[-1][0] == f"{COMPARE}?before={before.pk}&after={after.pk}"
    html = response.content.decode()
    assert f"run #{before.pk}</a>" in html and f"run #{after.pk}</a>" in html
    # p95 140 -> 15 ms (-89 %), as the committed compare-14.md says
    assert re.search(r"<td>p95 ms</td><td class=\"num\">140</td><td class=\"num\">15</td>\s*"
                     r"<td class=\"num lt-better\">-89 %", html)  # fmt: skip
    overlaid = charts(html)
    assert len(overlaid) == 4  # RPS, p95, users, failures
    assert all(
        f"#{before.pk} before at" in chart and f"#{after.pk} after at" in chart for chart in overlaid.values()
    )


def test_comparing_needs_exactly_two_existing_runs(staff, runs):
    three = staff.post(
        CHANGELIST,
        {"action": "compare_runs", "_selected_action": [run.pk for run in runs.values()]},
        follow=True,
    )
    missing = staff.get(COMPARE, {"before": runs["before"].pk, "after": 999_999}, follow=True)

    assert three.redirect_chain[-1][0] == CHANGELIST
    assert "Select exactly two runs to compare." in three.content.decode()
    assert missing.redirect_chain[-1][0] == CHANGELIST
    assert "Choose two different runs that exist." in missing.content.decode()


@pytest.mark.parametrize("page", ["list", "run", "compare"])
def test_non_staff_users_are_refused_and_anonymous_users_sent_to_log_in(runs, page):
    url = {
        "list": CHANGELIST,
        "run": change_url(runs["after"]),
        "compare": f"{COMPARE}?before={runs['before'].pk}&after={runs['after'].pk}",
    }[page]
    member = Client()
    member.force_login(UserFactory())

    refused = member.get(url)
    anonymous = Client().get(url)

    assert refused.status_code == 403
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/?next=")


def test_a_stored_run_folder_becomes_the_run_the_runner_would_have_stored():
    run = stored_run(RUNS / "20261127-001055-baseline")

    assert run.pk is None  # not saved: --compare can use it without touching the database
    assert (run.profile, run.max_users, run.think_time, run.duration_s) == ("baseline", 10, "1-3 s", 63)
    assert (run.requests, run.p95_ms, run.passed) == (372, 16.0, True)
    assert run.rps == run.data["stats"]["steady_rps"]
    assert run.report_path.endswith("20261127-001055-baseline/report.md")
    assert all({"p50_ms", "p95_ms", "p99_ms"} <= point.keys() for point in run.data["stats"]["history"])
    assert read_result(RUNS / "20261127-001055-baseline" / "report.json")["profile"]["name"] == "baseline"


def test_a_path_that_is_not_a_stored_run_is_one_clear_error(tmp_path):
    (tmp_path / "report.json").write_text('{"something": "else"}')

    with pytest.raises(StoredRunError, match=r"no report\.json at"):
        stored_run(tmp_path / "missing")
    with pytest.raises(StoredRunError, match="is not a load-test report"):
        stored_run(tmp_path)


def test_numbers_are_rounded_for_people():
    assert (rate(5.4614583125000005), rate(601.1931677018634), rate(0.0)) == ("5.5", "601", "0.0")
    assert (whole(1499.6), whole(14.0), whole(None)) == ("1,500", "14", "-")
    assert (percent(0.002280148631910821), percent(0.9936303)) == ("0.23", "99.36")

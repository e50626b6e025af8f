"""The monitor's building blocks: its own connection with a short statement timeout, sections
that fail alone, charts drawn as SVG, and thresholds turned into colours."""

from __future__ import annotations

import pytest
from django.db import connection

from perf.monitor.charts import Chart, Series, Threshold, line_chart, nice, sparkline
from perf.monitor.db import APPLICATION_NAME, fetch, monitor_connection
from perf.monitor.pages import Level, level_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_monitor_reads_on_a_connection_of_its_own_with_its_short_timeout(settings):
    settings.PERF_STATEMENT_TIMEOUT_MS = 300
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        request_pid = cursor.fetchone()[0]

    with monitor_connection() as conn:
        me = fetch(
            conn,
            "SELECT pg_backend_pid() AS pid, current_setting('application_name') AS app, "
            "current_setting('statement_timeout') AS timeout, current_database() AS db",
        )
        slow = fetch(conn, "SELECT pg_sleep(2)")
        after = fetch(conn, "SELECT 1 AS one")

    assert me.first()["pid"] != request_pid
    assert (me.first()["app"], me.first()["timeout"]) == (APPLICATION_NAME, "300ms")
    assert me.first()["db"] == connection.settings_dict["NAME"]  # the test database in tests
    assert not slow.ok and "Timed out after 300 ms" in slow.error
    assert after.rows == [{"one": 1}]  # one section's timeout leaves the others working


def test_a_failing_section_reports_its_error_instead_of_raising():
    with monitor_connection() as conn:
        broken = fetch(conn, "SELECT * FROM no_such_table")

    assert broken.rows == [] and "UndefinedTable" in broken.error


def test_an_unreachable_database_gives_sections_that_say_so(settings, monkeypatch):
    monkeypatch.setattr(
        "perf.monitor.db.connection_params", lambda: {"host": "127.0.0.1", "port": 1, "connect_timeout": 1}
    )

    with monitor_connection() as conn:
        section = fetch(conn, "SELECT 1")

    assert conn is None and section.error == "PostgreSQL is unreachable."


def test_line_chart_is_svg_with_escaped_labels_thresholds_and_a_point_per_value():
    chart = line_chart(
        Chart("p95 <ms>", [Series("list & search", [(0, 10.0), (5, None), (10, 30.0), (15, 20.0)])],
              [Threshold("target", 25.0)], y_unit=" ms")
    )  # fmt: skip

    assert chart.startswith('<figure class="perf-figure"><svg class="perf-chart"')
    assert "p95 &lt;ms&gt;" in chart and "list &amp; search" in chart and "<script" not in chart
    assert chart.count("<circle") == 3  # the gap (None) draws no point
    assert chart.count("<polyline") == 2  # and splits the line
    assert 'class="perf-threshold"' in chart


def test_an_empty_chart_says_so_and_a_sparkline_marks_its_last_value():
    assert "no data yet" in line_chart(Chart("empty", [Series("a", [])]))
    spark = sparkline([1.0, None, 4.0], label="waiting")
    assert 'class="perf-chart perf-sparkline"' in spark and "last 4" in spark


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, Level.UNKNOWN), (50, Level.OK), (80, Level.WARNING), (94.9, Level.WARNING), (95, Level.CRITICAL)],
)
def test_levels_follow_the_thresholds(value, expected):
    assert level_for(value, warning=80, critical=95) == expected


def test_levels_for_lower_is_worse_and_numbers_for_people():
    assert level_for(65, warning=70, critical=50, higher_is_worse=False) == Level.WARNING
    assert level_for(45, warning=70, critical=50, higher_is_worse=False) == Level.CRITICAL
    assert (nice(5.4614583125000005), nice(1234.5), nice(0.01234)) == ("5.46", "1,234", "0.0123")

"""What the load-test pages of the admin show: one run (verdict, charts, endpoints, failures,
resources, database time, caches, the report) and two runs compared.

Everything comes from the run's stored ``data``, the runner's ``result`` (runner.py): a page
never reads locust's files or the database's live statistics, so a run reads the same a year
later and on another machine. Numbers are rounded for people here, in one place: response
times to the millisecond, RPS to one decimal below 100, ratios as percentages to 0.01.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from django.conf import settings
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from perf.loadtest.report import COMPARED, GENERATOR_SATURATED, _short
from perf.models import LoadTestRun
from perf.monitor.charts import Chart, Series, Threshold, line_chart, nice
from perf.monitor.pages import Level, level_for

# --- numbers for people --------------------------------------------------------------------------


def whole(value: float | None) -> str:
    """Milliseconds, requests, users, MB: to the unit, with thousands separators."""
    return "-" if value is None else f"{value:,.0f}"


def rate(value: float | None) -> str:
    """Requests per second: 5.5 below a hundred, 206 above (a tenth of 206 says nothing)."""
    if value is None:
        return "-"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def percent(ratio: float | None) -> str:
    """A ratio as a percentage to 0.01: 0.002280148 -> "0.23"."""
    return "-" if ratio is None else f"{ratio * 100:.2f}"


def cpu(value: float | None) -> str:
    """A CPU share already in percent: one decimal below 10 (2.7), whole above (42)."""
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"


def fine_ms(value: float | None) -> str:
    """A query's mean time, where fractions of a millisecond matter: 0.29, 14.9, 1,204."""
    if value is None:
        return "-"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 100 else f"{value:,.0f}"


def change(old: float, new: float) -> str:
    """Relative change, whole percent, of the raw figures (the page shows them with more digits
    than report.py's table, whose _change works from its rounded figures); "from 0" has no ratio."""
    if not old:
        return "from 0" if new else "-"
    return f"{(new - old) / old * 100:+.0f} %"


# --- Markdown ----------------------------------------------------------------------------------

# CommonMark plus tables (the report is mostly tables). Raw HTML is off, so a `<script>` in a
# note, an endpoint name or a query shows as text, and markdown-it refuses javascript:,
# vbscript:, file: and data: links by itself: its output holds only the markup it generates,
# no sanitiser needed. Images are off too: a report has none, and a note must not make every
# staff browser that opens the page fetch a remote URL.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")


def markdown_html(text: str) -> SafeString:
    """Markdown (the stored report, actions, a comparison) as HTML safe to put in a page."""
    return mark_safe(_MARKDOWN.render(text or ""))  # noqa: S308 (raw HTML is off, see above)


def markdown_inline(text: str) -> SafeString:
    """One line of Markdown (a bottleneck with a `query`), without a wrapping paragraph."""
    return mark_safe(_MARKDOWN.renderInline(text or ""))  # noqa: S308 (raw HTML is off, see above)


# --- one run -----------------------------------------------------------------------------------

# Verdicts and check statuses in the monitor's colours (perf/static/perf/monitor.css).
STATUS_LEVEL = {"pass": Level.OK, "fail": Level.CRITICAL}
# The guide's resource targets (SPEC section 1): CPU < 70 %, memory < 2 GB; its CPU alerts are
# > 70 % (warning) and > 90 % (critical).
CPU_WARNING, CPU_CRITICAL = 70, 90
MEMORY_LIMIT_MB = 2048
# Each percentile's series and its threshold line share a colour (Okabe-Ito, as charts.py).
PERCENTILES = (("p50", "#009E73"), ("p95", "#E69F00"), ("p99", "#D55E00"))
TARGET_COLOR = "#D55E00"
# A second, unlined response-time chart when the data peaks below half the nearest target.
ZOOM_BELOW = 2
# A target both compared runs share belongs to neither run's colour.
SHARED_TARGET_COLOR = "#666666"
# Short names of failed checks for the list ("fail: RPS"), as docs/loadtests/README.md writes them.
SHORT_CHECK = {
    "p95 Response Time": "p95",
    "p99 Response Time": "p99",
    "Error Rate": "errors",
    "Throughput": "RPS",
    "Max VUs Handled": "users",
    "Requests": "no requests",
}


def failed_checks(metrics: list[str] | None) -> str:
    """The failed checks of a run, short: "p95, p99, RPS"."""
    return ", ".join(SHORT_CHECK.get(metric, metric) for metric in metrics or [])


def run_context(run: LoadTestRun) -> dict[str, Any]:
    """Everything the run page shows, from ``run.data``."""
    data = run.data
    stats = data["stats"]
    return {
        "verdict": verdict(run.passed),
        "facts": _facts(run),
        "checks": [
            {**check, "level": STATUS_LEVEL.get(check["status"], Level.UNKNOWN)} for check in data["checks"]
        ],
        "charts": run_charts(data),
        "percentiles_missing": [
            name
            for name, _ in PERCENTILES
            if stats["history"] and not any(f"{name}_ms" in point for point in stats["history"])
        ],
        "endpoints": endpoint_rows(data),
        "failures": failure_rows(data),
        "resources": resource_rows(data.get("resources") or {}),
        "cores": (data.get("resources") or {}).get("cpu_count"),
        "generator_limit": f"{GENERATOR_SATURATED:g}",
        "connections": ", ".join(
            f"{state} {count}"
            for state, count in ((data.get("resources") or {}).get("max_connections_by_state") or {}).items()
        ),
        "queries": query_rows(data),
        "redis": _redis(data.get("redis")),
        "response_cache": _response_cache(data.get("response_cache")),
        "bottlenecks": [markdown_inline(line) for line in data.get("bottlenecks") or []],
        "actions": markdown_html(data.get("actions") or ""),
        "report_html": markdown_html(data.get("markdown") or ""),
        "comparison_html": markdown_html(data["comparison"]) if data.get("comparison") else "",
    }


def verdict(passed: bool) -> dict[str, str]:
    """The verdict as a word and its colour."""
    return {"word": "pass" if passed else "fail", "level": Level.OK if passed else Level.CRITICAL}


def _facts(run: LoadTestRun) -> list[tuple[str, str]]:
    data = run.data
    profile, stats = data["profile"], data["stats"]
    stages = ", ".join(
        f"{stage['users']} users for {stage['seconds']} s (+{stage['spawn_rate']:g}/s)"
        for stage in profile.get("stages", [])
    )
    mix = ", ".join(f"{name} {weight}" for name, weight in profile.get("users_mix", {}).items())
    total = stats["total"]
    started, finished = run.started_at.astimezone(UTC), run.finished_at.astimezone(UTC)
    return [
        ("Profile", f"{profile['name']}: {profile.get('description', '')}"),
        ("Date", f"{started:%Y-%m-%d %H:%M:%S} to {finished:%H:%M:%S} UTC"),
        ("Host", run.host),
        ("Stages", stages),
        ("Think time", run.think_time),
        ("User mix", mix),
        ("Virtual users", f"{whole(run.max_users)} at most"),
        ("Duration", f"{whole(run.duration_s)} s, ramp-up {whole(data.get('ramp_up_s'))} s"),
        ("Requests", f"{whole(total['requests'])} ({whole(total['failures'])} failed)"),
        ("Environment", data.get("environment", "")),
        ("Report", run.report_path or "-"),
    ]


def _history_points(
    history: list[dict], value: Callable[[dict], float | None]
) -> list[tuple[float, float | None]]:
    return [(point["elapsed_s"], value(point)) for point in history]


def _error_percent(point: dict) -> float | None:
    """Failed requests as a share of all in locust's moving window; no traffic, no figure."""
    return point["failures_per_s"] / point["rps"] * 100 if point.get("rps") else None


def run_charts(data: dict) -> dict[str, SafeString]:
    """RPS, p50/p95/p99 with the profile's threshold lines, users and failures over time; and
    the response times again without the lines when the lines would flatten them."""
    history = data["stats"]["history"]
    limits = data["profile"].get("thresholds") or {}
    latency = [
        Series(name, _history_points(history, lambda point, key=f"{name}_ms": point.get(key)), color)
        for name, color in PERCENTILES
        if any(f"{name}_ms" in point for point in history)
    ]
    latency_limits = _thresholds(
        [(limits.get(f"{name}_ms"), f"{name} target", color) for name, color in PERCENTILES]
    )
    charts = {
        "rps": line_chart(
            Chart(
                "Requests per second",
                [Series("requests/s", _history_points(history, lambda point: point["rps"]))],
                _thresholds([(limits.get("min_rps"), "RPS target (more is better)", TARGET_COLOR)]),
                y_unit=" rps",
            )
        ),
        "latency": line_chart(
            Chart(
                "Response time (locust's moving window)",
                latency,
                latency_limits,
                y_unit=" ms",
            )
        ),
        "users": line_chart(
            Chart(
                "Virtual users",
                [Series("users", _history_points(history, lambda point: point["users"]), "#56B4E9")],
            )
        ),
        "failures": line_chart(
            Chart(
                "Failed requests (% of requests)",
                [Series("failed %", _history_points(history, _error_percent), "#CC79A7")],
                _thresholds([(_scaled(limits.get("error_rate"), 100), "error-rate target", TARGET_COLOR)]),
                y_unit=" %",
            )
        ),
    }
    # The chart's scale includes its threshold lines: a run at 15 ms under a 500 ms target
    # draws a flat line at the bottom, so its shape gets a chart of its own.
    peak = max((y for series in latency for _, y in series.points if y is not None), default=0.0)
    nearest = min((limit.value for limit in latency_limits), default=None)
    if nearest is not None and 0 < peak * ZOOM_BELOW < nearest:
        charts["latency_zoom"] = line_chart(
            Chart(
                f"Response time, scaled to this run (targets from {nice(nearest)} ms are above)",
                latency,
                y_unit=" ms",
            )
        )
    return charts


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _thresholds(lines: list[tuple[float | None, str, str]]) -> list[Threshold]:
    """Threshold lines for the limits that are set (a profile's None is "not checked")."""
    return [Threshold(label, float(value), color) for value, label, color in lines if value is not None]


def endpoint_rows(data: dict) -> list[dict[str, Any]]:
    """Per endpoint, busiest first, with its own p95 target when the profile has one (flow)."""
    limits = (data["profile"].get("thresholds") or {}).get("endpoint_p95_ms") or {}
    rows = []
    for endpoint in sorted(data["stats"]["endpoints"], key=lambda e: (-e["requests"], e["name"])):
        limit = limits.get(endpoint["name"])
        ok = endpoint["requests"] > 0 and limit is not None and endpoint["p95_ms"] < limit
        rows.append(
            {
                "name": endpoint["name"],
                "requests": whole(endpoint["requests"]),
                "failures": whole(endpoint["failures"]),
                "error_pct": percent(endpoint["failures"] / endpoint["requests"])
                if endpoint["requests"]
                else "-",
                "p50": whole(endpoint["p50_ms"]),
                "p95": whole(endpoint["p95_ms"]),
                "p99": whole(endpoint["p99_ms"]),
                "avg": whole(endpoint["avg_ms"]),
                "rps": rate(endpoint["rps"]),
                "target": f"< {limit:g} ms" if limit is not None else "",
                "level": (Level.OK if ok else Level.CRITICAL) if limit is not None else None,
            }
        )
    total = data["stats"]["total"]
    if rows:
        rows.append(
            {
                "name": "All endpoints",
                "total": True,
                "requests": whole(total["requests"]),
                "failures": whole(total["failures"]),
                "error_pct": percent(data["stats"]["error_rate"]),
                "p50": whole(total["p50_ms"]),
                "p95": whole(total["p95_ms"]),
                "p99": whole(total["p99_ms"]),
                "avg": whole(total["avg_ms"]),
                "rps": rate(total["rps"]),
                "target": "",
                "level": None,
            }
        )
    return rows


def failure_rows(data: dict) -> list[dict[str, str]]:
    """Failures by endpoint and reason (locust's failures CSV, kept in the run), most first."""
    requests = {endpoint["name"]: endpoint["requests"] for endpoint in data["stats"]["endpoints"]}
    rows = []
    for failure in data["stats"].get("failures") or []:
        occurrences = int(failure["Occurrences"])
        of = requests.get(failure["Name"])
        rows.append(
            {
                "name": failure["Name"],
                "error": failure["Error"],
                "occurrences": whole(occurrences),
                "share": percent(occurrences / of) if of else "-",
            }
        )
    return rows


def resource_rows(resources: dict) -> list[dict[str, Any]]:
    """Server, generator, PostgreSQL and Redis: average and peak, CPU as a share of the machine.

    The generator is sampled as a share of one core (it is one process); it is divided by the
    core count here so that every CPU figure on the page is in one unit."""
    cores = resources.get("cpu_count") or 1

    def figures(key: str, scale: float = 1.0) -> tuple[float | None, float | None]:
        measured = resources.get(key)
        return (measured["avg"] * scale, measured["max"] * scale) if measured else (None, None)

    server_avg, server_max = figures("server_cpu_percent")
    rss_avg, rss_max = figures("server_rss_mb")
    generator_avg, generator_max = figures("generator_cpu_percent_of_core", 1 / cores)
    rows = [
        {
            "label": "Server CPU (all gunicorn processes)",
            "avg": cpu(server_avg),
            "max": cpu(server_max),
            "unit": "%",
            "target": f"< {CPU_WARNING} % on average",
            "level": level_for(server_avg, warning=CPU_WARNING, critical=CPU_CRITICAL),
        },
        {
            "label": "Server memory (RSS, master + workers)",
            "avg": whole(rss_avg),
            "max": whole(rss_max),
            "unit": "MB",
            "target": f"< {MEMORY_LIMIT_MB:,} MB at peak",
            "level": level_for(rss_max, warning=MEMORY_LIMIT_MB, critical=MEMORY_LIMIT_MB),
        },
        {
            "label": "Load generator CPU (same machine"
            + (
                f"; {cpu(generator_avg * cores)} % of one core on average)"
                if generator_avg is not None
                else ")"
            ),
            "avg": cpu(generator_avg),
            "max": cpu(generator_max),
            "unit": "%",
            "target": f"< {GENERATOR_SATURATED:g} % of one core, else it limits the run",
            # Amber, not red: a saturated generator makes the figures doubtful, not the server slow.
            "level": Level.UNKNOWN
            if generator_avg is None
            else Level.WARNING
            if generator_avg * cores >= GENERATOR_SATURATED
            else Level.OK,
        },
    ]
    for label, key in [
        ("PostgreSQL CPU", "database_cpu_percent"),
        ("Redis CPU", "redis_cpu_percent"),
        ("Whole machine CPU", "machine_cpu_percent"),
    ]:
        if key not in resources:
            continue
        avg, peak = figures(key)
        whole_machine = key == "machine_cpu_percent"
        rows.append(
            {
                "label": label,
                "avg": cpu(avg),
                "max": cpu(peak),
                "unit": "%",
                "target": f"< {CPU_WARNING} % on average" if whole_machine else "",
                "level": level_for(avg, warning=CPU_WARNING, critical=CPU_CRITICAL)
                if whole_machine
                else None,
            }
        )
    return rows


def query_rows(data: dict) -> list[dict[str, str]]:
    """The queries that took the most database time during the run (pg_stat_statements delta)."""
    queries = (data.get("database") or {}).get("top_queries") or []
    listed = sum(query["total_ms"] for query in queries)
    return [
        {
            "total": whole(query["total_ms"]),
            "calls": whole(query["calls"]),
            "mean": fine_ms(query["mean_ms"]),
            "share": percent(query["total_ms"] / listed) if listed else "-",
            "short": _short(query["query"], 160),
            "query": query["query"],
        }
        for query in queries
    ]


def _cache_level(ratio: float | None) -> Level:
    """Hit-ratio colours as on the monitor's cache page (PERF_CACHE_HIT_*_PCT)."""
    return level_for(
        None if ratio is None else ratio * 100,
        warning=settings.PERF_CACHE_HIT_WARNING_PCT,
        critical=settings.PERF_CACHE_HIT_CRITICAL_PCT,
        higher_is_worse=False,
    )


def _redis(redis: dict | None) -> dict[str, str] | None:
    if not redis:
        return None
    return {
        "hits": whole(redis["hits"]),
        "misses": whole(redis["misses"]),
        "ratio": percent(redis["hit_ratio"]),
    }


def _response_cache(cache: dict | None) -> dict[str, Any] | None:
    if not cache or not cache.get("by_prefix"):
        return None
    return {
        "ratio": percent(cache["hit_ratio"]),
        "level": _cache_level(cache["hit_ratio"]),
        "rows": [
            {
                "prefix": prefix,
                "hits": whole(delta["hits"]),
                "stale": whole(delta["stale"]),
                "misses": whole(delta["misses"]),
                "ratio": percent(delta["hit_ratio"]),
                "level": _cache_level(delta["hit_ratio"]),
            }
            for prefix, delta in sorted(cache["by_prefix"].items())
        ],
    }


# --- two runs ----------------------------------------------------------------------------------

LOWER, HIGHER = "lower", "higher"
# How the page shows report.COMPARED's figures (the before/after table of `--compare`): a
# formatter and which way is better. A figure added there and not here still shows, in
# report.py's own format and without a colour.
SHOWN: dict[str, tuple[Callable[[float], str], str | None]] = {
    "p95 ms": (whole, LOWER),
    "p99 ms": (whole, LOWER),
    "Error rate %": (lambda value: f"{value:.2f}", LOWER),
    "Throughput RPS": (rate, HIGHER),
    "Requests": (whole, None),  # follows from users and think time, neither good nor bad
    "Server CPU avg %": (cpu, LOWER),
    "PostgreSQL CPU avg %": (cpu, LOWER),
    "Server RSS max MB": (whole, LOWER),
    "Redis keyspace hit ratio %": (lambda value: f"{value:.2f}", HIGHER),
    "Response cache hit ratio %": (lambda value: f"{value:.2f}", HIGHER),
}


def _trend(old: float, new: float, better: str | None, shown: Callable[[float], str]) -> str:
    """ "better", "worse" or "": no direction, or no change as shown (477 against 477 MB, or
    +0 % from 99.38 to 99.81)."""
    if better is None or shown(old) == shown(new) or change(old, new) in ("+0 %", "-0 %"):
        return ""
    return "better" if (new < old) == (better == LOWER) else "worse"


def comparison_rows(before: dict, after: dict) -> list[dict[str, str]]:
    """report.COMPARED's figures, then p95 per endpoint (each endpoint either run has)."""
    rows = []
    for label, value, fallback in COMPARED:
        old, new = value(before), value(after)
        shown, better = SHOWN.get(label, (fallback.format, None))
        if old is None or new is None:  # a run that did not measure it (an older report)
            rows.append(
                {
                    "label": label,
                    "before": "n/a" if old is None else shown(old),
                    "after": "n/a" if new is None else shown(new),
                    "change": "-",
                    "trend": "",
                }
            )
            continue
        rows.append(
            {
                "label": label,
                "before": shown(old),
                "after": shown(new),
                "change": change(old, new),
                "trend": _trend(old, new, better, shown),
            }
        )
    old_endpoints = {e["name"]: e for e in before["stats"]["endpoints"]}
    new_endpoints = {e["name"]: e for e in after["stats"]["endpoints"]}
    for name in sorted(old_endpoints.keys() | new_endpoints.keys()):
        old, new = old_endpoints.get(name), new_endpoints.get(name)
        both = old is not None and new is not None
        rows.append(
            {
                "label": f"p95 {name}",
                "before": whole(old["p95_ms"]) if old else "-",
                "after": whole(new["p95_ms"]) if new else "-",
                "change": change(old["p95_ms"], new["p95_ms"]) if both else "-",
                "trend": _trend(old["p95_ms"], new["p95_ms"], LOWER, whole) if both else "",
            }
        )
    return rows


def check_pairs(before: dict, after: dict) -> list[dict[str, Any]]:
    """The two runs' Metric/Value/Target/Status rows side by side, by metric."""
    old = {check["metric"]: check for check in before["checks"]}
    new = {check["metric"]: check for check in after["checks"]}
    metrics = [*old, *(metric for metric in new if metric not in old)]
    return [
        {
            "metric": metric,
            "sides": [
                None
                if check is None
                else {**check, "level": STATUS_LEVEL.get(check["status"], Level.UNKNOWN)}
                for check in (old.get(metric), new.get(metric))
            ],
        }
        for metric in metrics
    ]


def compare_charts(before: LoadTestRun, after: LoadTestRun) -> dict[str, SafeString]:
    """The two runs' series overlaid on one time axis (seconds from each run's start)."""
    runs = [(f"#{before.pk} before", before.data, "#0072B2"), (f"#{after.pk} after", after.data, "#D55E00")]

    def overlaid(
        title: str, value: Callable[[dict], float | None], unit: str, key: str | None = None, scale: float = 1
    ) -> SafeString:
        # Each run's own limit in its colour; one grey line when both profiles have the same.
        values = [
            _scaled((data["profile"].get("thresholds") or {}).get(key), scale) if key else None
            for _, data, _ in runs
        ]
        if values[0] is not None and values[0] == values[1]:
            limits = [Threshold("target (both)", values[0], SHARED_TARGET_COLOR)]
        else:
            limits = _thresholds(
                [
                    (value, f"{label.split()[0]} target", color)
                    for value, (label, _, color) in zip(values, runs, strict=True)
                ]
            )
        series = [
            Series(label, _history_points(data["stats"]["history"], value), color)
            for label, data, color in runs
        ]
        return line_chart(Chart(title, series, limits, y_unit=unit))

    return {
        "rps": overlaid("Requests per second", lambda point: point["rps"], " rps", "min_rps"),
        "latency": overlaid(
            "p95 response time (moving window)", lambda point: point["p95_ms"], " ms", "p95_ms"
        ),
        "users": overlaid("Virtual users", lambda point: point["users"], ""),
        "failures": overlaid("Failed requests (% of requests)", _error_percent, " %", "error_rate", 100),
    }


def compare_context(before: LoadTestRun, after: LoadTestRun) -> dict[str, Any]:
    """Everything the compare page shows."""
    return {
        "runs": [
            {
                "run": run,
                "side": side,
                "verdict": verdict(run.passed),
                "failed": failed_checks(
                    [check["metric"] for check in run.data["checks"] if check["status"] == "fail"]
                ),
                "rps": rate(run.rps),
                "p95": whole(run.p95_ms),
                "p99": whole(run.p99_ms),
                "errors": percent(run.error_rate),
                "requests": whole(run.requests),
            }
            for side, run in (("before", before), ("after", after))
        ],
        "rows": comparison_rows(before.data, after.data),
        "checks": check_pairs(before.data, after.data),
        "charts": compare_charts(before, after),
    }

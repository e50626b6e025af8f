"""The Grafana dashboard (deploy/grafana/bountyexpo.json) only asks for metrics the app exports.

A misspelt or renamed metric does not break a dashboard: its panel just says "No data", which
is what an operator sees during an incident. So every PromQL expression in the dashboard (panel
targets and template variable queries) is parsed, and each metric name and each label it filters
or groups by is looked up in what GET /metrics returns after a few requests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "bountyexpo.json"

# The metrics the dashboard is built on (the guide's names), each of which it must use.
REQUIRED_METRICS = {
    "http_request_duration_ms_bucket",
    "http_requests_total",
    "http_request_errors_total",
    "db_query_duration_ms_sum",
    "db_query_duration_ms_bucket",
    "db_slow_queries_total",
    "db_connection_pool_size",
    "db_connection_pool_max",
    "db_connection_pool_waits_total",
    "db_connection_pool_timeouts_total",
    "cache_hits_total",
    "cache_stale_total",
    "cache_misses_total",
    "cache_errors_total",
    "rate_limited_total",
}

# --- a small PromQL reader ----------------------------------------------------------------------

# Functions and aggregation operators of PromQL (Prometheus 3), plus Grafana's query helpers.
FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time",
    "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing",
    "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile",
    "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase",
    "info", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
    "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin",
    "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year", "avg",
    "bottomk", "count", "count_values", "group", "limit_ratio", "limitk", "max", "min", "quantile",
    "stddev", "stdvar", "sum", "topk", "label_values", "query_result"
})  # fmt: skip
# Keywords are case-insensitive in PromQL; these take a label list in parentheses.
GROUPING_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = GROUPING_KEYWORDS | {"and", "or", "unless", "bool", "offset", "start", "end", "inf", "nan"}

# Grafana replaces these before the query reaches Prometheus: $route, ${route}, ${route:regex},
# [[route]], $__rate_interval, ${__range}... A number stands in for them (a duration inside [...],
# a string inside "...", a value elsewhere), which never reads as a metric name.
GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:ms|[smhdwy]|\d+)*)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@])
    """,
    re.VERBOSE,
)


@dataclass
class Query:
    """What a PromQL expression reads: each metric with the labels its selectors match on, and
    the labels it groups or joins by."""

    metrics: dict[str, set[str]] = field(default_factory=dict)
    grouping_labels: set[str] = field(default_factory=set)


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[position:]!r} in {expr!r}")
        if match.lastgroup not in ("space", "comment"):
            tokens.append((match.lastgroup, match.group()))
        position = match.end()
    return tokens


def _string_value(literal: str) -> str:
    return literal[1:-1]


def parse_promql(expr: str) -> Query:
    """Read the metric names and label names of a PromQL expression (or of a Grafana
    ``label_values(metric, label)`` variable query). An unknown function raises ValueError, so
    a typo such as ``rat(...)`` cannot hide a metric name from the check; so does anything it
    cannot read."""
    try:
        return _parse(expr, _tokens(GRAFANA_VARIABLE.sub("1", expr)))
    except (IndexError, StopIteration):  # an unclosed {, ( or [
        raise ValueError(f"cannot read PromQL {expr!r}") from None


def _parse(expr: str, tokens: list[tuple[str, str]]) -> Query:
    query = Query()
    i = 0

    def matchers(start: int, metric: str | None) -> int:
        """Read ``{label op "value", ...}`` from ``start`` (the ``{``); return the index after it."""
        labels, j = set(), start + 1
        while tokens[j][1] != "}":
            kind, label = tokens[j]
            if kind != "ident" or tokens[j + 1][0] != "op" or tokens[j + 2][0] != "string":
                raise ValueError(f"cannot read the label matchers of {expr!r}")
            if label == "__name__" and tokens[j + 1][1] == "=":
                metric = _string_value(tokens[j + 2][1])
            else:
                labels.add(label)
            j += 3
            if tokens[j][1] == ",":
                j += 1
        if metric is None:
            raise ValueError(f"a selector without a metric name in {expr!r}")
        query.metrics.setdefault(metric, set()).update(labels)
        return j + 1

    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if text == "[":  # a range or a subquery: durations only
            i = next(j for j in range(i, len(tokens)) if tokens[j][1] == "]") + 1
        elif text == "{":
            i = matchers(i, None)
        elif kind != "ident":
            i += 1
        elif text == "label_values" and following == "(":
            # Grafana: label_values(label) or label_values(metric selector, label).
            close = next(j for j in range(i, len(tokens)) if tokens[j][1] == ")")
            inner = tokens[i + 2 : close]
            if len(inner) > 1:
                selector = parse_promql(_expr_of(inner[:-2]))
                for metric, labels in selector.metrics.items():
                    query.metrics.setdefault(metric, set()).update({*labels, inner[-1][1]})
            i = close + 1
        elif text.lower() in GROUPING_KEYWORDS and following == "(":
            close = next(j for j in range(i, len(tokens)) if tokens[j][1] == ")")
            labels = tokens[i + 2 : close]
            if any(k != "ident" and t != "," for k, t in labels):
                raise ValueError(f"cannot read the label list after {text!r} in {expr!r}")
            query.grouping_labels.update(t for k, t in labels if k == "ident")
            i = close + 1
        elif text.lower() in KEYWORDS:
            i += 1
        elif following == "(" or (following or "").lower() in ("by", "without"):  # sum by (le) (...)
            if text not in FUNCTIONS:
                raise ValueError(f"unknown PromQL function {text!r} in {expr!r}")
            i += 1
        elif following == "{":
            i = matchers(i + 1, text)
        else:
            query.metrics.setdefault(text, set())
            i += 1
    return query


def _expr_of(tokens: list[tuple[str, str]]) -> str:
    return " ".join(text for _, text in tokens)


def metric_names(expr: str) -> set[str]:
    return set(parse_promql(expr).metrics)


# --- the dashboard ------------------------------------------------------------------------------


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, including those inside collapsed rows."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def datasource_variable(dashboard: dict) -> str:
    """The name of the dashboard's Prometheus datasource variable (e.g. DS_PROMETHEUS)."""
    names = [
        variable["name"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "datasource" and variable["query"] == "prometheus"
    ]
    assert len(names) == 1, "the dashboard needs one Prometheus datasource variable"
    return names[0]


def variable_query(variable: dict) -> str:
    query = variable.get("query", "")
    return query["query"] if isinstance(query, dict) else query


def dashboard_expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expr) for every panel target and every query variable."""
    found = [
        (f"panel {panel['title']!r} target {target.get('refId')}", target["expr"])
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    found += [
        (f"variable {variable['name']!r}", variable_query(variable))
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return found


def exported_metrics(client, settings) -> dict[str, set[str]]:
    """Sample name -> label names, from GET /metrics after a list and a 404. Every statement
    counts as slow here, so db_slow_queries_total has its labelled series as it would in
    production after the first slow query."""
    settings.SLOW_QUERY_MS = 0
    assert client.get("/api/bounties").status_code == 200
    assert client.get("/api/bounties/999999").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    exported: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    return exported


# --- the reader, checked first so the dashboard test cannot pass by reading nothing -------------

KNOWN = {
    "http_request_duration_ms_bucket": {"method", "route", "status_code", "le"},
    "http_requests_total": {"method", "route", "status_code"},
    "cache_hits_total": {"cache_key_prefix"},
    "cache_stale_total": {"cache_key_prefix"},
    "cache_misses_total": {"cache_key_prefix"},
    "db_connection_pool_size": {"state"},
    "db_connection_pool_max": set(),
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            "histogram_quantile(0.95, sum by (le, route) "
            '(rate(http_request_duration_ms_bucket{route=~"$route"}[5m])))',
            {"http_request_duration_ms_bucket"},
        ),
        (
            'sum(rate(http_requests_total{route=~"${route:regex}", status_code="5xx"}[$__rate_interval])) '
            "/ ignoring(status_code) group_left "
            "sum without (method) (rate(http_requests_total[5m] offset 1h))",
            {"http_requests_total"},
        ),
        (
            "(sum(rate(cache_hits_total[1h30m])) + sum(rate(cache_stale_total[5m:1m])))\n/\n"
            "clamp_min(sum(rate(cache_misses_total[${__range}])), 1e-9) > bool 0.7",
            {"cache_hits_total", "cache_stale_total", "cache_misses_total"},
        ),
        (
            'sum(db_connection_pool_size{state="active"}) / sum(db_connection_pool_max) AND on() vector(1)',
            {"db_connection_pool_size", "db_connection_pool_max"},
        ),
        ('{__name__="cache_hits_total", cache_key_prefix="resp:bounty"}', {"cache_hits_total"}),
        ('count by (route) (http_requests_total{route="/api/bounties/{id}"})', {"http_requests_total"}),
        ("label_values(http_requests_total, route)", {"http_requests_total"}),
        ("label_values(route)", set()),
        (
            "topk(5, sum by (table) (rate(db_query_duration_ms_sum[$__interval])))",
            {"db_query_duration_ms_sum"},
        ),
    ],
)
def test_the_promql_reader_finds_the_metric_names(expr, expected):
    assert metric_names(expr) == expected


def test_the_promql_reader_keeps_selector_labels_apart_from_grouping_labels():
    query = parse_promql(
        'histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_ms_bucket{route=~"$route",'
        ' method="GET"}[5m])))'
    )
    assert query.metrics == {"http_request_duration_ms_bucket": {"route", "method"}}
    assert query.grouping_labels == {"le", "route"}


@pytest.mark.parametrize(
    ("expr", "unknown"),
    [
        ("sum(rate(http_request_duraton_ms_bucket[5m]))", {"http_request_duraton_ms_bucket"}),
        ("sum(rate(cache_hit_total[5m])) / sum(rate(cache_misses_total[5m]))", {"cache_hit_total"}),
        ("http_request_duration_ms_count", {"http_request_duration_ms_count"}),
    ],
)
def test_the_check_flags_a_misspelt_metric(expr, unknown):
    assert metric_names(expr) - set(KNOWN) == unknown


@pytest.mark.parametrize(
    "expr",
    [
        "rat(http_requests_total[5m])",
        "sum(rate(http_requests_total[5m])) ~ 1",
        'sum(rate(http_requests_total{route="/api/bounties"[5m]))',
        "sum by (route (http_requests_total)",
        "http_requests_total{",
    ],
)
def test_the_promql_reader_rejects_what_it_cannot_read(expr):
    with pytest.raises(ValueError):
        parse_promql(expr)


# --- the dashboard itself --------------------------------------------------------------------------


def test_every_panel_has_an_id_a_title_the_prometheus_datasource_and_a_query():
    dashboard = load_dashboard()
    datasource = {"type": "prometheus", "uid": f"${{{datasource_variable(dashboard)}}}"}
    panels = all_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    for panel in panels:
        assert isinstance(panel["id"], int)
        assert panel.get("title"), panel
        assert "gridPos" in panel, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"{panel['title']}: an operator needs to know how to read it"
        assert panel["datasource"] == datasource, panel["title"]
        targets = panel["targets"]
        assert any(target.get("expr") for target in targets), panel["title"]
        refs = [target["refId"] for target in targets]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in targets:
            assert target.get("datasource", datasource) == datasource, panel["title"]
    route = next(v for v in dashboard["templating"]["list"] if v["name"] == "route")
    assert route["datasource"] == datasource
    assert metric_names(variable_query(route)) == {"http_requests_total"}


@pytest.mark.django_db
def test_every_metric_and_label_in_the_dashboard_is_one_the_app_exports(client, settings):
    exported = exported_metrics(client, settings)
    used: set[str] = set()
    problems = []
    for where, expr in dashboard_expressions(load_dashboard()):
        query = parse_promql(expr)
        assert query.metrics, f"{where}: no metric in {expr!r}"
        used |= set(query.metrics)
        labels_here: set[str] = set()
        for metric, labels in query.metrics.items():
            if metric not in exported:
                problems.append(f"{where}: {metric} is not in GET /metrics")
                continue
            labels_here |= exported[metric]
            if missing := labels - exported[metric]:
                problems.append(f"{where}: {metric} has no label {sorted(missing)}")
        if missing := query.grouping_labels - labels_here:
            problems.append(f"{where}: groups by {sorted(missing)}, a label none of its metrics has")
    assert not problems, "\n".join(problems)
    assert used >= REQUIRED_METRICS, f"the dashboard does not use {sorted(REQUIRED_METRICS - used)}"

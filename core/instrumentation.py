"""Where the guide's metrics are measured: requests (two middlewares around django-prometheus's)
and SQL statements (an execute wrapper on every database connection), plus the slow-query log.

Labels stay bounded: a request is labelled by its URL *pattern* (``/api/bounties/{id}``, never
the id), its status class (``2xx`` ... ``5xx``) and, for errors, the API's error code; a
statement by its operation and the first table it names.
"""

from __future__ import annotations

import logging
import re
import time
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_prometheus import middleware as django_prometheus
from django_prometheus.conf import NAMESPACE, PROMETHEUS_LATENCY_BUCKETS
from prometheus_client import Counter, Histogram

from core import metrics

slow_query_logger = logging.getLogger("bountyexpo.slow_query")

UNMATCHED = "unmatched"  # the route of a URL no pattern matched (its 404s)
_current_request: ContextVar[HttpRequest | None] = ContextVar("metrics_request", default=None)


# --- route patterns ----------------------------------------------------------------------------

_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
# The router names an object's key "pk"; the schema (drf-spectacular) and people say "id".
_PARAMETER_NAMES = {"pk": "id"}


@lru_cache(maxsize=512)
def route_label(pattern: str) -> str:
    """``api/^bounties/(?P<pk>[^/.]+)$`` or ``api/profiles/<int:pk>`` -> ``/api/bounties/{id}``,
    ``/api/profiles/{id}``: the pattern as the OpenAPI schema writes it."""

    def name(match: re.Match) -> str:
        return "{" + _PARAMETER_NAMES.get(match[1], match[1]) + "}"

    route = _CONVERTER.sub(name, _REGEX_GROUP.sub(name, pattern))
    route = route.replace("^", "").replace("$", "").replace("\\", "")
    return "/" + route.lstrip("/")


def route_of(request: HttpRequest | None) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return UNMATCHED
    return route_label(match.route)


def current_route() -> str:
    """The route of the request this thread serves ("-" outside a request)."""
    request = _current_request.get()
    return "-" if request is None else route_of(request)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method(request: HttpRequest) -> str:
    return request.method if request.method in _METHODS else "other"


def error_type(response: HttpResponse) -> str:
    """The API error code of an error response (``not_found``, ``throttled`` ...): DRF keeps
    the body's data, core.errors marks its plain-Django responses; else ``http_<status>``."""
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = data["error"].get("code")
        if isinstance(code, str):
            return code
    code = getattr(response, "error_code", None)
    return code if isinstance(code, str) else f"http_{response.status_code}"


# --- requests ----------------------------------------------------------------------------------


class _BeforeMetrics(django_prometheus.Metrics):
    """Only the families the Before middleware moves: django-prometheus's registers all of its
    After middleware's too, which would be exported and stay at zero forever."""

    _instance = None  # the singleton of this class, not django-prometheus's

    def register(self) -> None:
        self.requests_total = self.register_metric(
            Counter,
            "django_http_requests_before_middlewares_total",
            "Total count of requests before middlewares run.",
            namespace=NAMESPACE,
        )
        self.responses_total = self.register_metric(
            Counter,
            "django_http_responses_before_middlewares_total",
            "Total count of responses before middlewares run.",
            namespace=NAMESPACE,
        )
        self.requests_latency_before = self.register_metric(
            Histogram,
            "django_http_requests_latency_including_middlewares_seconds",
            "Histogram of requests processing time (including middleware processing time).",
            buckets=PROMETHEUS_LATENCY_BUCKETS,
            namespace=NAMESPACE,
        )
        self.requests_unknown_latency_before = self.register_metric(
            Counter,
            "django_http_requests_unknown_latency_including_middlewares_total",
            "Count of requests for which the latency was unknown.",
            namespace=NAMESPACE,
        )


class PrometheusBeforeMiddleware(django_prometheus.PrometheusBeforeMiddleware):
    """The outermost middleware: django-prometheus's request and response counters and its
    whole-stack latency, and the guide's ``http_request_duration_ms`` / ``http_requests_total`` /
    ``http_request_errors_total`` over the whole stack (gzip, rate limits, authentication
    included).

    django-prometheus's *After* middleware is left out on purpose: its nine series per request
    (by view name, transport, charset, body sizes) repeat what the route-labelled series say
    and cost more than all the rest of the metrics together (README, Observability).
    """

    metrics_cls = _BeforeMetrics

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        token = _current_request.set(request)
        try:
            response = super().__call__(request)
        finally:
            _current_request.reset(token)
        elapsed_ms = (time.perf_counter() - start) * 1000
        method, route, status = _method(request), route_of(request), response.status_code
        observe_request(method, route, status, elapsed_ms)
        if status >= 400:
            metrics.HTTP_REQUEST_ERRORS.labels(method, route, error_type(response)).inc()
        return response


def observe_request(method: str, route: str, status: int, elapsed_ms: float) -> None:
    """The guide's duration and count of one request (its errors are the caller's)."""
    labels = (method, route, _STATUS_CLASSES.get(status // 100, "other"))
    metrics.child(metrics.HTTP_REQUEST_DURATION, *labels).observe(elapsed_ms)
    metrics.child(metrics.HTTP_REQUESTS, *labels).inc()


def observe_front_request(method: str, route: str, status: int, seconds: float) -> None:
    """What the middleware above counts for a request the WSGI front answered before Django
    (core.hit_front): django-prometheus's before-middleware series and the guide's two."""
    before = _BeforeMetrics.get_instance()
    before.requests_total.inc()
    before.responses_total.inc()
    before.requests_latency_before.observe(seconds)
    observe_request(method, route, status, seconds * 1000)


_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}


# --- SQL statements ----------------------------------------------------------------------------

# Linear even on an unclosed "/*" (a lazy .*? retried at every "/*" is quadratic).
_COMMENT = re.compile(r"/\*(?:[^*]|\*(?!/))*\*/|--[^\n]*")
_TABLE_AFTER = {
    "select": re.compile(r'\bFROM\s+(?:ONLY\s+)?"?([\w.]+)"?', re.I),
    "delete": re.compile(r'\bFROM\s+(?:ONLY\s+)?"?([\w.]+)"?', re.I),
    "insert": re.compile(r'\bINTO\s+"?([\w.]+)"?', re.I),
    "update": re.compile(r'^UPDATE\s+(?:ONLY\s+)?"?([\w.]+)"?', re.I),
    "other": re.compile(r'\b(?:FROM|INTO|UPDATE|TABLE|TRUNCATE)\s+(?:ONLY\s+)?"?([\w.]+)"?', re.I),
}
_OPERATIONS = frozenset({"select", "insert", "update", "delete"})


@lru_cache(maxsize=4096)
def classify(sql: str) -> tuple[str, str]:
    """(operation, table) of a statement: ``select``/``insert``/``update``/``delete`` or
    ``other`` (WITH, SAVEPOINT, SET ...), and the first table it names (``none`` if none)."""
    text = _COMMENT.sub(" ", sql).strip()
    first = text.split(None, 1)[0].lower() if text else ""
    operation = first if first in _OPERATIONS else "other"
    found = _TABLE_AFTER[operation].search(text)
    table = found[1].rsplit(".", 1)[-1].lower() if found else "none"
    return operation, table


_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w.$])-?\d+(?:\.\d+)?\b")
_LIST = re.compile(r"\?(?:\s*,\s*\?)+")
_SPACE = re.compile(r"\s+")
SQL_LOG_LIMIT = 2000


@lru_cache(maxsize=1024)
def normalise(sql: str) -> str:
    """The statement without its values: literals and placeholders become ``?``, a list of them
    ``?, ...``, whitespace one space; cut at SQL_LOG_LIMIT characters."""
    text = _STRING.sub("?", sql.replace("%s", "?"))
    text = _NUMBER.sub("?", text)
    text = _LIST.sub("?, ...", text)
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= SQL_LOG_LIMIT else text[:SQL_LOG_LIMIT] + " ..."


def observe_query(execute, sql: str, params: Any, many: bool, context: dict) -> Any:
    """Django execute wrapper (installed on every connection by core.db): times the statement
    into ``db_query_duration_ms`` and logs it once when it takes SLOW_QUERY_MS or more."""
    start = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed_ms = (time.perf_counter() - start) * 1000
        operation, table = classify(sql)
        metrics.DB_QUERY_DURATION.labels(operation, table).observe(elapsed_ms)
        if elapsed_ms >= settings.SLOW_QUERY_MS:
            metrics.DB_SLOW_QUERIES.labels(operation, table).inc()
            _log_slow(sql, elapsed_ms, operation, table)


def _log_slow(sql: str, elapsed_ms: float, operation: str, table: str) -> None:
    # The request id comes with every record (core.logging.RequestIdFilter).
    statement = normalise(sql)
    route = current_route()
    slow_query_logger.warning(
        "slow query %.0f ms (%s %s) on %s: %s",
        elapsed_ms,
        operation,
        table,
        route,
        statement,
        extra={
            "duration_ms": round(elapsed_ms, 1),
            "route": route,
            "sql": statement,
            "operation": operation,
            "table": table,
        },
    )

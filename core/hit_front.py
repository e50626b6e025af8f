"""The hit path's WSGI front: a cached GET answered before Django's handler runs.

The lean hit path (core.hit_path.HitPathMiddleware) answers a cached GET in one Redis round
trip, but only after Django has built its request, sent ``request_started``, and run every
middleware above it; and it answers with an HttpResponse that those middleware then finish.
For a hit that machinery costs more than the hit itself (docs/perf/hit-path-front.md). This
front wraps the WSGI application (bountyexpo/wsgi.py) and, for a GET of a cached read, asks the
hit path's own decision (``HitPathMiddleware.attempt``: the same round trip, the same freshness
contract, the same rate-limit bucket) with a stand-in request read from the environ, and writes
the response itself: the headers the view and every middleware would give (ETag and 304,
X-Cache, Cache-Control, Vary, Allow, Content-Length, X-Frame-Options, the security headers,
gzip, X-RateLimit-*, X-Request-ID) and the request metrics the outer middleware would count.
``tests/core/test_hit_front.py`` compares it byte for byte with the full path.

Anything it does not answer goes to Django as before, with what the round trip already did
left in the environ (``hit_path.FRONT_NOTES``), so the middleware neither counts the request
twice nor tries again: a miss, a request over its limit (the full path answers the 429), a
token not seen yet, Redis trouble, a host or scheme the middleware above would refuse or
redirect, a path or query string that is not plain ASCII, and any error of its own (logged).

It knows the middleware above the hit path (OUTER); settings naming another one refuse to
start, as the hit path refuses unknown middleware after it. ``HIT_PATH_FRONT=0`` turns it off
(the middleware still answers hits), ``HIT_PATH_ENABLED=0`` turns both off.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property

from allow_cidr import middleware as allow_cidr
from django.conf import settings
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.request import split_domain_port, validate_host
from django.middleware.gzip import GZipMiddleware as DjangoGZipMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.cache import patch_vary_headers
from django.utils.regex_helper import _lazy_re_compile
from django.utils.text import compress_string

from core import hit_path, response_cache
from core.instrumentation import observe_front_request, route_label
from core.request_id import REQUEST_ID_HEADER, bind_request_id, new_request_id, reset_request_id

logger = logging.getLogger(__name__)

# The middleware that may run above core.hit_path.HitPathMiddleware; what each does to a cached
# GET, the front does too.
OUTER = {
    "allow_cidr.middleware.AllowCIDRMiddleware",  # the Host check (_Config.host_ok)
    "core.instrumentation.PrometheusBeforeMiddleware",  # observe_front_request
    "core.middleware.RequestIdMiddleware",  # X-Request-ID, bound while the front works
    "core.middleware.CacheControlMiddleware",  # nothing: a cached read sets Cache-Control
    "core.middleware.GZipMiddleware",  # _gzip
    "core.middleware.RateLimitHeadersMiddleware",  # X-RateLimit-*
    "django.middleware.security.SecurityMiddleware",  # its headers; an SSL redirect declines
}
# Query strings and hosts whose parts and checks are kept (bounded, forgotten all at once).
MEMORY = 10_000
_ACCEPTS_GZIP = _lazy_re_compile(r"\bgzip\b")  # as Django's GZipMiddleware reads Accept-Encoding


_SCHEME = HttpRequest.scheme.fget  # Django's own: SECURE_PROXY_SSL_HEADER, else wsgi.url_scheme


class _Request:
    """What the hit path's decision reads of a request, from the environ: ``META``, ``method``,
    ``scheme`` (Django's own property, SECURE_PROXY_SSL_HEADER included), ``get_host()`` (checked
    by the front first) and ``GET``. The decision leaves its notes on it as attributes."""

    method = "GET"

    def __init__(self, environ: dict, host: str):
        self.META = environ
        self._host = host
        self.scheme = _SCHEME(self)  # read once: the decision and the front both ask

    def _get_scheme(self) -> str:
        return self.META.get("wsgi.url_scheme", "http")

    def get_host(self) -> str:
        return self._host

    def is_secure(self) -> bool:
        return self.scheme == "https"

    @cached_property
    def GET(self) -> QueryDict:
        return QueryDict(self.META.get("QUERY_STRING", ""))


@dataclass(frozen=True)
class _Config:
    """What the front reads of the settings, read once (again after a change of settings)."""

    enabled: bool
    metrics: bool
    ssl_redirect: bool
    cidr_hosts: tuple[str, ...] | None  # ALLOWED_HOSTS as set, when AllowCIDRMiddleware took it over
    gzip_floor: int
    gzip_random_bytes: int
    x_frame_options: str
    cache_control: tuple[str, str]  # response_cache.cache_control: anonymous, signed in
    # The headers SecurityMiddleware adds to a response (plain http, https).
    security: tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


def _security_headers(secure: bool) -> tuple[tuple[str, str], ...]:
    """What SecurityMiddleware itself adds to an empty response, run once per scheme."""
    request = HttpRequest()
    request.is_secure = lambda: secure
    response = HttpResponse()
    before = set(response.headers)
    SecurityMiddleware(lambda request: response).process_response(request, response)
    return tuple((name, value) for name, value in response.items() if name not in before)


def _cache_control(*, signed_in: bool) -> str:
    """response_cache.cache_control for an anonymous or a signed-in reader."""
    request = HttpRequest()
    if signed_in:
        request.META["HTTP_AUTHORIZATION"] = "Bearer -"
    return response_cache.cache_control(request)


def _config() -> _Config:
    middleware = settings.MIDDLEWARE
    name = "core.hit_path.HitPathMiddleware"
    outer = middleware[: middleware.index(name)] if name in middleware else None
    if outer is not None:
        unknown = [entry for entry in outer if entry not in OUTER]
        if unknown:
            raise ImproperlyConfigured(
                f"{', '.join(unknown)} before core.hit_path.HitPathMiddleware would be skipped by the "
                "hit path's WSGI front: teach the front what it does (core/hit_front.py OUTER), or set "
                "HIT_PATH_FRONT=0."
            )
    cidr = "allow_cidr.middleware.AllowCIDRMiddleware" in middleware and settings.ALLOWED_CIDR_NETS
    return _Config(
        enabled=outer is not None and settings.HIT_PATH_FRONT and settings.HIT_PATH_ENABLED,
        metrics="core.instrumentation.PrometheusBeforeMiddleware" in (outer or ()),
        ssl_redirect=settings.SECURE_SSL_REDIRECT,
        cidr_hosts=tuple(allow_cidr.ORIG_ALLOWED_HOSTS) if cidr else None,
        gzip_floor=max(settings.GZIP_MIN_BYTES, 200),  # core.middleware.GZipMiddleware, then Django's
        gzip_random_bytes=DjangoGZipMiddleware.max_random_bytes,
        x_frame_options=getattr(settings, "X_FRAME_OPTIONS", "DENY").upper(),
        cache_control=(_cache_control(signed_in=False), _cache_control(signed_in=True)),
        security=(_security_headers(False), _security_headers(True)),
    )


class HitFront:
    """WSGI middleware around the Django application (bountyexpo/wsgi.py)."""

    def __init__(self, application):
        self.application = application
        self.decision = hit_path.HitPathMiddleware(None)  # its checks of the settings run here
        self._config: _Config | None = _config()  # refuses unknown middleware at start-up
        self._hosts: dict[str, str | None] = {}  # raw Host header -> host, None: not allowed
        self._parts: dict[tuple, tuple] = {}  # (path, scheme, host, query string) -> entry parts
        self._vary: dict[tuple[int, bool], str] = {}  # (id of the route, gzip) -> Vary
        # Weakly: a front that is dropped (tests build one per request) leaves no receiver behind.
        setting_changed.connect(self._settings_changed)

    def _settings_changed(self, **kwargs) -> None:
        self._config = None
        self._hosts.clear()
        self._parts.clear()
        self._vary.clear()

    def __call__(self, environ: dict, start_response):
        if environ.get("REQUEST_METHOD") == "GET":
            config = self._config or self._load_config()
            if config.enabled:
                started = time.perf_counter()
                try:
                    answer = self._answer(environ, config, started)
                except Exception:
                    logger.exception("the hit path's WSGI front failed; the full path answers")
                    answer = None
                if answer is not None:
                    status, headers, body = answer
                    start_response(status, headers)
                    return [body]
        return self.application(environ, start_response)

    def _load_config(self) -> _Config:
        self._config = _config()
        return self._config

    def _answer(self, environ: dict, config: _Config, started: float):
        """(status line, headers, body), or None with the environ ready for the full path."""
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        if not (path.isascii() and query.isascii()):
            return None  # Django decodes these its own way: let it
        route, match = self.decision.match_path(path)
        if route is None:
            return None
        host = self._host(environ, config)
        if host is None:
            return None  # the full path answers 400
        request = _Request(environ, host)
        secure = request.is_secure()
        if config.ssl_redirect and not secure:
            return None  # SecurityMiddleware may redirect it
        request_id = new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        # Bound for the log lines of the attempt. Not tagged in Sentry: its Django integration
        # gives each request a scope of its own only inside Django's handler, and a tag set out
        # here would stay on the thread's scope for the requests after it.
        token = bind_request_id(request_id, request)
        try:
            parts = self._parts_of(request, route, match)
            served, outcome = self.decision.attempt(request, route, match, parts)
        finally:
            reset_request_id(token)
            # What the attempt did (a count taken, a view counted), for the full path should it
            # answer after all: it then neither counts again nor tries the short path again.
            notes = {name: request.__dict__[name] for name in hit_path.NOTE_NAMES if name in request.__dict__}
            environ[hit_path.FRONT_NOTES] = notes
            environ["HTTP_X_REQUEST_ID"] = request_id  # and its log lines carry the same id
        hit_path.count_outcome(outcome)
        if served is None:
            return None
        status, headers, body = self._response(environ, request, route, served, config, secure)
        headers.append((REQUEST_ID_HEADER, request_id))
        if flush := getattr(request, "hit_path_flush", None):
            flush()
        if config.metrics:
            route_name = route_label(match.route)
            observe_front_request("GET", route_name, int(status[:3]), time.perf_counter() - started)
        return status, headers, body

    def _host(self, environ: dict, config: _Config) -> str | None:
        """The request's host as Django's get_host() gives it, when the middleware above would
        let it in (else None); remembered per raw header."""
        raw = environ.get("HTTP_HOST", "")
        try:
            return self._hosts[raw]
        except KeyError:
            pass
        if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
            return None  # not remembered by HTTP_HOST alone: let Django read it
        request = HttpRequest()
        request.META = environ
        try:
            host = request.get_host()
        except DisallowedHost:
            host = None
        if host is not None and config.cidr_hosts is not None:
            domain, _port = split_domain_port(host)
            if not domain or not validate_host(domain, list(config.cidr_hosts)):
                host = None  # maybe one of ALLOWED_CIDR_NETS: AllowCIDRMiddleware decides
        if len(self._hosts) >= MEMORY:
            self._hosts.clear()
        self._hosts[raw] = host
        return host

    def _parts_of(self, request: _Request, route, match) -> tuple:
        meta = request.META
        key = (meta.get("PATH_INFO"), request.scheme, request.get_host(), meta.get("QUERY_STRING", ""))
        parts = self._parts.get(key)
        if parts is None:
            parts = route.read.parts(request, match.kwargs)
            if len(self._parts) >= MEMORY:
                self._parts.clear()
            self._parts[key] = parts
        return parts

    def _response(self, environ, request, route, served, config: _Config, secure: bool):
        """What the view's cached answer becomes after hit_path._finish and the middleware
        above: status line, headers, body."""
        not_modified = response_cache.not_modified(environ.get("HTTP_IF_NONE_MATCH"), served.etag)
        body = b"" if not_modified else served.body
        etag = served.etag
        gzip_vary = len(body) >= config.gzip_floor  # GZipMiddleware patches Vary from here on
        encoded = False
        if gzip_vary and _ACCEPTS_GZIP.search(environ.get("HTTP_ACCEPT_ENCODING", "")):
            compressed = compress_string(body, max_random_bytes=config.gzip_random_bytes)
            if len(compressed) < len(body):
                body, encoded = compressed, True
                if etag.startswith('"'):
                    etag = "W/" + etag
        headers = [] if not_modified else [("Content-Type", "application/json")]
        headers += [
            ("ETag", etag),
            ("X-Cache", served.state),
            ("Cache-Control", config.cache_control["HTTP_AUTHORIZATION" in environ]),
            ("Vary", self._vary_of(route, gzip_vary)),
            *route.headers,
            ("Content-Length", str(len(body))),
            ("X-Frame-Options", config.x_frame_options),
            *config.security[secure],
        ]
        state = getattr(request, "rate_limit", None)
        if state is not None:
            headers += [
                ("X-RateLimit-Limit", str(state.limit)),
                ("X-RateLimit-Remaining", str(state.remaining)),
                ("X-RateLimit-Reset", str(state.reset)),
            ]
        if encoded:
            headers.append(("Content-Encoding", "gzip"))
        return ("304 Not Modified" if not_modified else "200 OK"), headers, body

    def _vary_of(self, route, gzip: bool) -> str:
        """Vary as response_cache.respond, hit_path._finish and GZipMiddleware patch it."""
        vary = self._vary.get((id(route), gzip))  # routes live as long as the process
        if vary is None:
            response = HttpResponse()
            response["Vary"] = "Authorization"
            if route.vary:
                patch_vary_headers(response, route.vary)
            if gzip:
                patch_vary_headers(response, ("Accept-Encoding",))
            vary = self._vary[(id(route), gzip)] = response["Vary"]
        return vary

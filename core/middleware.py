"""Middleware shared by the whole project."""

from __future__ import annotations

from django.conf import settings
from django.middleware.gzip import GZipMiddleware as DjangoGZipMiddleware

from core.request_id import REQUEST_ID_HEADER, bind_request_id, new_request_id, reset_request_id
from core.sentry import tag_request_id


class RequestIdMiddleware:
    """Gives each request an id (the client's X-Request-ID when sane), echoed in the response.

    It runs first, so every log line of the request, including Django's own, carries the id,
    and gunicorn's access log can print it from the response header; so do the request's
    Sentry events, when Sentry is on (core.sentry).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        token = bind_request_id(request_id, request)
        tag_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class CacheControlMiddleware:
    """``Cache-Control: private, no-store`` on every response that says nothing of its own.

    Only the cached reads (core.response_cache.respond) may be kept by a shared cache, and they
    set their header themselves; so do whitenoise's static files and the admin (never_cache).
    Everything else (per-user reads such as the wallet and messages, writes, errors, 429s,
    /metrics) must never be stored by a proxy or CDN, nor by the browser.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = "private, no-store"
        return response


class GZipMiddleware(DjangoGZipMiddleware):
    """Django's gzip, but only for bodies of GZIP_MIN_BYTES or more (Django's floor is 200 B):
    below about 1 KB the CPU spent compressing buys almost nothing on the wire."""

    def process_response(self, request, response):
        if not response.streaming and len(response.content) < settings.GZIP_MIN_BYTES:
            return response
        return super().process_response(request, response)


class RateLimitHeadersMiddleware:
    """Adds X-RateLimit-Limit, -Remaining and -Reset to responses of rate-limited endpoints
    (core.ratelimit.TieredRateLimit leaves the count on the request), 429s included."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        state = getattr(request, "rate_limit", None)
        if state is not None:
            response["X-RateLimit-Limit"] = str(state.limit)
            response["X-RateLimit-Remaining"] = str(state.remaining)
            response["X-RateLimit-Reset"] = str(state.reset)
        return response

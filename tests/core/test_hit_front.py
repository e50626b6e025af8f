"""The hit path's WSGI front (core/hit_front.py) on what only it does: the headers and checks of
the middleware above the hit path (request id, security headers over https, the Host check,
SSL redirects), what it leaves to Django, and its guards. Hits, 304s, stale answers, 429s and
tokens through the front are compared with the full path byte for byte in test_hit_path.py
(every test there runs through the front as well)."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from allow_cidr import middleware as allow_cidr
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from bountyexpo import wsgi
from core import hit_path
from core.hit_front import HitFront
from tests.core.test_hit_path import FrontHandler, as_bytes, one_window, reset_counts, warm

pytestmark = pytest.mark.django_db

LIST = "/api/bounties?limit=20"


def get(client, url: str, *, front: bool, **headers):
    """The response through the front around the client's handler (``.front``: the front
    answered it), or through the full path alone."""
    original = client.handler
    client.handler = FrontHandler(original) if front else original
    try:
        with override_settings(HIT_PATH_ENABLED=front):
            response = client.get(url, **headers)
    finally:
        client.handler = original
    response.front = getattr(response, "front", False)
    return response


def pair(client, url: str, **headers):
    """(full path, front) for the same request, rate-limit headers left out (two requests count
    twice)."""
    answers = []
    for front in (False, True):
        response = get(client, url, front=front, HTTP_X_REQUEST_ID="front-test", **headers)
        status, items, body = as_bytes(response)
        items = [(name, value) for name, value in items if not name.startswith("X-RateLimit-")]
        answers.append((response, (status, items, body)))
    (full, full_bytes), (short, short_bytes) = answers
    return full, short, full_bytes, short_bytes


def test_the_served_application_is_the_front_around_django():
    assert isinstance(wsgi.application, HitFront)
    assert wsgi.application.application is wsgi.django_application


def test_over_https_behind_a_proxy_it_adds_the_security_headers_django_adds(
    bounty, limits, api_client, settings
):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    api_client = APIClient()  # Django's SecurityMiddleware reads its settings when it is built
    warm(api_client, LIST)
    for _ in range(2):
        api_client.get(LIST, HTTP_X_FORWARDED_PROTO="https")  # page links are https: another entry

    _full, short, full_bytes, short_bytes = pair(api_client, LIST, HTTP_X_FORWARDED_PROTO="https")
    plain = get(api_client, LIST, front=True)

    assert short.front and short_bytes == full_bytes
    assert short["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    assert plain.front and "Strict-Transport-Security" not in plain  # plain http: no HSTS, as Django


def test_an_ssl_redirect_is_left_to_django(bounty, limits, api_client, settings):
    warm(api_client, LIST)
    settings.SECURE_SSL_REDIRECT = True

    response = get(APIClient(), LIST, front=True)  # a handler built with the redirect on

    assert not response.front
    assert response.status_code == 301 and response["Location"].startswith("https://")


def test_a_host_django_refuses_is_left_to_django(bounty, limits, api_client):
    warm(api_client, LIST)

    response = get(api_client, LIST, front=True, HTTP_HOST="evil.example")

    assert not response.front and response.status_code == 400


def test_a_host_only_allowed_by_network_is_left_to_the_cidr_middleware(settings, monkeypatch):
    # As AllowCIDRMiddleware leaves the settings once built: ALLOWED_HOSTS "*", its own list kept.
    settings.ALLOWED_CIDR_NETS = ["10.0.0.0/8"]
    settings.MIDDLEWARE = ["allow_cidr.middleware.AllowCIDRMiddleware", *settings.MIDDLEWARE]
    settings.ALLOWED_HOSTS = ["*"]
    monkeypatch.setattr(allow_cidr, "ORIG_ALLOWED_HOSTS", ["api.example.com"])
    front = HitFront(lambda environ, start_response: [])

    def host(name: str):
        return front._host({"HTTP_HOST": name, "SERVER_NAME": "-", "SERVER_PORT": "80"}, front._config)

    assert host("api.example.com") == "api.example.com"
    assert host("10.1.2.3") is None  # maybe allowed by network: the middleware decides
    assert host("evil.example") is None


def test_the_request_id_is_the_clients_when_sane_and_one_id_when_django_answers(bounty, limits, api_client):
    warm(api_client, LIST)
    sent = get(api_client, LIST, front=True, HTTP_X_REQUEST_ID="from-the-client")
    insane = get(api_client, LIST, front=True, HTTP_X_REQUEST_ID="no spaces allowed")
    made = get(api_client, LIST, front=True)
    with mock.patch.object(hit_path.HitPathMiddleware, "attempt", return_value=(None, "miss")):
        passed_on = get(api_client, LIST, front=True)

    assert sent.front and sent["X-Request-ID"] == "from-the-client"
    assert (
        insane.front and len(insane["X-Request-ID"]) == 32 and insane["X-Request-ID"] != made["X-Request-ID"]
    )
    assert not passed_on.front and len(passed_on["X-Request-ID"]) == 32


def test_a_hit_counts_in_every_request_metric_the_full_path_counts(bounty, limits, api_client):
    warm(api_client, LIST)
    names = {
        "django_http_requests_before_middlewares_total": {},
        "django_http_responses_before_middlewares_total": {},
        "django_http_requests_latency_including_middlewares_seconds_count": {},
        "http_requests_total": {"method": "GET", "route": "/api/bounties", "status_code": "2xx"},
        "http_request_duration_ms_count": {"method": "GET", "route": "/api/bounties", "status_code": "2xx"},
    }

    def counts():
        return {name: REGISTRY.get_sample_value(name, labels) or 0.0 for name, labels in names.items()}

    moved = []
    for front in (False, True):
        before = counts()
        response = get(api_client, LIST, front=front)
        assert response.front == front
        moved.append({name: value - before[name] for name, value in counts().items()})

    assert moved[0] == moved[1] == dict.fromkeys(names, 1.0)


def test_its_own_failure_is_logged_and_django_answers_counting_the_request_once(
    bounty, limits, api_client, caplog
):
    warm(api_client, LIST)
    reset_counts()
    with (
        mock.patch.object(HitFront, "_response", side_effect=RuntimeError("a bug in the front")),
        caplog.at_level(logging.ERROR, logger="core.hit_front"),
        one_window(),
    ):
        response = get(api_client, LIST, front=True)

    assert not response.front and response.status_code == 200 and response["X-Cache"] == "hit"
    assert "a bug in the front" in caplog.text
    assert response["X-RateLimit-Remaining"] == "99"  # counted by the front's round trip only


def test_a_path_or_query_outside_ascii_is_left_to_django(bounty, limits):
    front = HitFront(lambda environ, start_response: "django")
    # gunicorn hands raw UTF-8 bytes of the request line over as latin-1 text.
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/bounties/search",
        "QUERY_STRING": "q=caf\xc3\xa9",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "REMOTE_ADDR": "127.0.0.1",
    }

    assert front(environ, lambda status, headers: None) == "django"
    assert hit_path.FRONT_NOTES not in environ  # it never tried: nothing counted


def test_hit_path_front_off_leaves_every_request_to_django(bounty, limits, api_client, settings):
    warm(api_client, LIST)
    settings.HIT_PATH_FRONT = False

    response = get(api_client, LIST, front=True)

    assert not response.front and response["X-Cache"] == "hit"  # the middleware served it


def test_middleware_above_the_hit_path_it_does_not_know_is_refused_at_start(settings):
    settings.MIDDLEWARE = ["django.middleware.http.ConditionalGetMiddleware", *settings.MIDDLEWARE]

    with pytest.raises(ImproperlyConfigured, match="ConditionalGetMiddleware"):
        HitFront(lambda environ, start_response: [])

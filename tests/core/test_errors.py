from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest
from django.test import Client

from core.logging import RequestIdFilter
from core.parsers import MAX_DEPTH
from tests.conftest import assert_error, gunicorn_server

pytestmark = pytest.mark.django_db


def test_unknown_url_is_404_in_the_error_shape(api_client):
    assert assert_error(api_client.get("/api/no-such-thing"), 404)["code"] == "not_found"


def test_wrong_method_is_405_with_allow_header(api_client):
    response = api_client.put("/api/auth/register", {}, format="json")

    assert assert_error(response, 405)["code"] == "method_not_allowed"
    assert "POST" in response["Allow"]


def test_malformed_json_is_400_parse_error(api_client):
    response = api_client.post("/api/auth/register", data="{not json", content_type="application/json")

    assert assert_error(response, 400)["code"] == "parse_error"


def test_form_body_on_json_api_is_415(api_client):
    response = api_client.post(
        "/api/auth/register", data="a=b", content_type="application/x-www-form-urlencoded"
    )

    assert assert_error(response, 415)["code"] == "unsupported_media_type"


@pytest.mark.urls("tests.core.urls_errors")
def test_throttling_is_429_with_retry_after(api_client):
    response = api_client.get("/test/throttled")

    assert assert_error(response, 429)["code"] == "throttled"
    assert response["Retry-After"] == "42"


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.urls("tests.core.urls_errors")
def test_unexpected_exception_is_500_without_internals_and_logged_with_request_id():
    collect = _Collect()
    logger = logging.getLogger("bountyexpo.errors")
    logger.addHandler(collect)
    try:
        response = Client(raise_request_exception=False).get("/test/crash", HTTP_X_REQUEST_ID="req-abc-123")
    finally:
        logger.removeHandler(collect)

    error = assert_error(response, 500)
    assert error["code"] == "server_error"
    assert "req-abc-123" in error["message"]
    assert b"hunter2" not in response.content
    assert b"Traceback" not in response.content
    assert response["X-Request-ID"] == "req-abc-123"
    [record] = collect.records
    assert record.request_id == "req-abc-123"
    assert "hunter2" in str(record.exc_info[1])


@pytest.mark.urls("tests.core.urls_errors")
def test_crash_outside_drf_is_500_in_the_error_shape():
    response = Client(raise_request_exception=False).get("/test/crash-plain")

    assert assert_error(response, 500)["code"] == "server_error"
    assert b"secret internals" not in response.content


def test_request_id_is_generated_when_absent_and_replaced_when_unsafe(api_client):
    generated = api_client.get("/healthz")["X-Request-ID"]
    unsafe = api_client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]

    assert len(generated) == 32
    assert unsafe != "bad id\nwith newline"
    assert len(unsafe) == 32
    assert api_client.get("/healthz", HTTP_X_REQUEST_ID="edge-7f3a")["X-Request-ID"] == "edge-7f3a"


# --- bodies no client should send --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/token"])
def test_deeply_nested_json_is_400_parse_error_even_unauthenticated(api_client, path):
    body = "[" * 1000 + "]" * 1000  # 2 KB

    response = api_client.post(path, data=body, content_type="application/json")

    assert "nested" in assert_error(response, 400, "parse_error")["message"]


def test_nesting_just_past_the_limit_is_refused_and_below_it_reaches_validation(user_client):
    too_deep = {"title": [[[]]]}
    for _ in range(MAX_DEPTH):
        too_deep = {"x": too_deep}

    assert_error(user_client.post("/api/bounties", too_deep, format="json"), 400, "parse_error")
    shallow = user_client.post("/api/bounties", {"title": [[["nested"]]]}, format="json")
    assert assert_error(shallow, 400, "validation_error")["fields"]["title"]


def test_body_over_the_upload_limit_is_413_in_the_error_shape(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"username": "x" * 20_000, "email": "a@example.com", "password": "p"})

    response = api_client.post("/api/auth/register", data=body, content_type="application/json")

    assert "10000 bytes" in assert_error(response, 413, "request_too_large")["message"]


def test_body_over_the_upload_limit_outside_the_api_is_413_too(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000

    response = Client().post("/admin/login/", {"username": "x" * 20_000, "password": "y"})

    assert_error(response, 413, "request_too_large")


@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_an_oversized_body_with_413_and_stays_up(tmp_path):
    body = json.dumps({"username": "x" * 3_000_000}).encode()  # over Django's 2.5 MB default
    with gunicorn_server(tmp_path) as server:
        request = urllib.request.Request(  # noqa: S310 (our test server)
            f"{server.url}/api/auth/register", data=body, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310 (our test server)

        assert refused.value.code == 413
        assert json.loads(refused.value.read())["error"]["code"] == "request_too_large"
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as after:  # noqa: S310
            assert after.status == 200

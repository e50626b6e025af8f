from __future__ import annotations

import logging

import pytest
from django.test import Client

from core.logging import RequestIdFilter
from tests.conftest import assert_error

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

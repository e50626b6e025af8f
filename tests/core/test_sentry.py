"""Sentry reporting (core/sentry.py): nothing without a DSN; with one, each error is one event
tagged with the request id, and nothing secret or personal leaves the process. A transport
that records envelopes stands in for the network."""

from __future__ import annotations

import io
import json
import logging
import secrets
import time
from wsgiref.util import setup_testing_defaults

import pytest
import sentry_sdk
from django.core import signals
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections
from sentry_sdk.transport import Transport

from accounts.services import token_issue
from bountyexpo.wsgi import application
from core.sentry import init_sentry

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.urls_errors")]

DSN = "https://public@example.invalid/1"
CLIENT_IP = "203.0.113.7"
logger = logging.getLogger("bountyexpo.tests.sentry")


class RecordingTransport(Transport):
    """Keeps every envelope the SDK would send."""

    def __init__(self):
        super().__init__()
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    def payloads(self, item_type: str) -> list[dict]:
        return [item.payload.json for env in self.envelopes for item in env.items if item.type == item_type]

    def wire(self) -> str:
        """Everything sent, serialised as it would go over the wire."""
        return b"".join(envelope.serialize() for envelope in self.envelopes).decode()


@pytest.fixture
def sentry():
    transport = RecordingTransport()
    assert init_sentry(DSN, environment="test", release="r1", traces_sample_rate=1.0, transport=transport)
    yield transport
    # Back to no client at all, and scopes without this test's tags and breadcrumbs.
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    sentry_sdk.get_isolation_scope().clear()
    sentry_sdk.get_current_scope().clear()


def serve(method: str, path: str, *, query: str = "", headers: dict[str, str], body: bytes = b"") -> int:
    """Serve one request through the project's WSGI application, as gunicorn does: Sentry's
    Django integration hooks in there (the test client bypasses it) and reads the URL, query
    string and headers from the WSGI environ. Returns the status code."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": CLIENT_IP,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    }
    setup_testing_defaults(environ)
    statuses = []
    # As Django's test client does: the handler would close the test's connection, which is
    # inside the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        response = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(response)
        response.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return int(statuses[0].split()[0])


def test_without_a_dsn_sentry_is_not_initialised_and_nothing_is_sent():
    transport = RecordingTransport()

    started = init_sentry("", environment="test", release=None, traces_sample_rate=1.0, transport=transport)
    logger.error("failed for %s", "someone@example.com")
    status = serve("GET", "/test/crash-plain", headers={})

    assert started is False
    assert status == 500
    assert not sentry_sdk.get_client().is_active()
    assert transport.envelopes == []


def test_a_sample_rate_outside_zero_to_one_is_refused_before_starting():
    with pytest.raises(ImproperlyConfigured, match="SENTRY_TRACES_SAMPLE_RATE"):
        init_sentry(DSN, environment="test", release=None, traces_sample_rate=2.0)

    assert not sentry_sdk.get_client().is_active()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/test/crash-write", "could not notify [email]"),  # logged by the DRF handler
        ("/test/crash-write-plain", "could not notify [email] outside DRF"),  # Django gives up
    ],
    ids=["drf", "django"],
)
def test_crash_is_one_event_tagged_with_the_request_id_and_without_secrets(sentry, user, path, message):
    raw_token, _ = token_issue(user=user)
    csrf = secrets.token_hex(16)  # a valid CSRF secret, so the plain Django view is reached
    secret_values = [
        raw_token,
        "query-token-123",
        "a@b.com",
        "c%40d.org",
        "c@d.org",
        "session-cookie-123",
        csrf,
        "body-password-123",
        "poster@example.com",
        CLIENT_IP,
    ]

    status = serve(
        "POST",
        path,
        query="token=query-token-123&email=a@b.com&cc=c%40d.org&page=2",
        headers={
            "Authorization": f"Bearer {raw_token}",
            "Cookie": f"sessionid=session-cookie-123; csrftoken={csrf}",
            "X-CSRFToken": csrf,
            "X-Request-ID": "req-sentry-42",
        },
        body=json.dumps({"email": "poster@example.com", "password": "body-password-123"}).encode(),
    )

    assert status == 500
    [event] = sentry.payloads("event")
    assert event["tags"]["request_id"] == "req-sentry-42"
    [transaction] = sentry.payloads("transaction")
    assert transaction["tags"]["request_id"] == "req-sentry-42"
    wire = sentry.wire()
    assert [value for value in secret_values if value in wire] == []
    # What helps to debug is still there.
    assert event["exception"]["values"][-1]["value"] == message
    request = event["request"]
    assert request["method"] == "POST"
    assert request["url"].endswith(path)
    assert request["query_string"] == "token=[Filtered]&email=[email]&cc=[email]&page=2"
    assert {request["headers"][name] for name in ("Authorization", "Cookie", "X-Csrftoken")} == {"[Filtered]"}
    assert not request.get("data")
    assert "user" not in event


def test_secret_in_an_exception_message_is_filtered(sentry):
    status = serve("GET", "/test/crash", headers={"X-Request-ID": "req-sentry-43"})

    assert status == 500
    [event] = sentry.payloads("event")
    assert "hunter2" not in sentry.wire()
    assert event["exception"]["values"][-1]["value"] == "secret internals: password=[Filtered]"


def test_long_header_values_are_scrubbed_in_bounded_time(sentry):
    """gunicorn lets a client send 100 headers of 8 KB: scrubbing them must stay cheap (an
    unanchored pattern took seconds per event, holding the worker), and still scrub."""
    headers = {"X-Request-ID": "req-sentry-44", "User-Agent": "a" * 8000, "X-Note": "token=" + "b" * 8000}
    started = time.process_time()
    status = serve("GET", "/test/crash", headers=headers)
    elapsed = time.process_time() - started

    assert status == 500
    assert len(sentry.payloads("event")) == 1
    assert "b" * 100 not in sentry.wire()
    assert elapsed < 2, elapsed  # was 2.3 s for a 4 KB header; bounded now at a few ms


def test_logged_error_is_one_event_without_emails_or_secret_extras(sentry, caplog):
    caplog.set_level(logging.INFO, logger=logger.name)

    logger.info("sending a receipt to %s", "buyer@example.com")
    logger.error(
        "could not send a receipt to %s", "buyer@example.com", extra={"reset_token": "reset-token-123"}
    )

    [event] = sentry.payloads("event")
    wire = sentry.wire()
    assert "buyer@example.com" not in wire
    assert "reset-token-123" not in wire
    assert event["logentry"]["formatted"] == "could not send a receipt to [email]"
    assert event["logentry"]["params"] == ["[email]"]
    assert event["extra"]["reset_token"] == "[Filtered]"
    assert event["breadcrumbs"]["values"][-1]["message"] == "sending a receipt to [email]"
    assert "request_id" not in event.get("tags", {})  # logged outside any request

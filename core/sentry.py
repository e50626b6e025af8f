"""Optional error reporting to Sentry, and what may leave the process with it.

Off unless a DSN is configured (``SENTRY_DSN``). When on, unhandled exceptions (those Django
gives up on, and those the DRF handler logs) and ERROR log records become Sentry events, tagged
with the request id that the logs and the client's error message carry. Nothing secret or
personal is sent: request bodies never; credentials (Authorization, cookies, X-CSRFToken, and
any header, query parameter, field, extra or breadcrumb datum whose name looks like a token,
password, secret, api key, session or csrf) as ``[Filtered]``; email addresses anywhere as
``[email]``; of the user, only the id.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

import sentry_sdk
from django.core.exceptions import ImproperlyConfigured
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
from sentry_sdk.transport import Transport

REQUEST_ID_TAG = "request_id"
FILTERED = "[Filtered]"
EMAIL = "[email]"

# A name containing one of these holds a credential. Substrings, so `X-CSRFToken`,
# `refresh_token`, `new_password` and `sessionid` match too; not a bare "auth", which would
# hide `author`.
_SENSITIVE = (
    r"token|passw|pwd|secret|api[-_]?key|session|csrf|xsrf|cookie|authorization|credential"
    r"|private[-_]?key|signature"
)
_SENSITIVE_NAME = re.compile(_SENSITIVE, re.IGNORECASE)
_NAME = re.compile(r"[\w.-]{1,100}")
# In free text (exception messages, log messages, URLs, SQL): `name=value` as in query strings
# and logfmt, `'name': value` as in dict reprs and JSON, and credentials after an auth scheme.
# Anchored at a name's start and bounded: an unanchored [\w.-]* retried at every position is
# quadratic, and one long header would hold the worker (and the GIL) for seconds.
_SENSITIVE_ASSIGNMENT = re.compile(
    rf"""(?<![\w.-])(?P<name>[\w.-]{{0,64}}?(?:{_SENSITIVE})[\w.-]{{0,64}})(?P<sep>=|['"]\s*:\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s&;,'"}]+)""",
    re.IGNORECASE,
)
_AUTH_SCHEME_CREDENTIALS = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[\w.~+/=-]+", re.IGNORECASE)
# Percent-encoded too (`%40`), as an address in a query string or a logged URL is.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}(?:@|%40)[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
# Longer texts are cut before scrubbing (Sentry shortens them anyway): bounded work per event.
MAX_TEXT = 8192

# The SDK's own scrubber runs first and matches whole names only: these are the variants of
# ours that its defaults miss. The substring match of `_before_send` is what covers the rest.
_DENYLIST = [
    *DEFAULT_DENYLIST,
    "x-csrftoken",
    "csrfmiddlewaretoken",
    "access_token",
    "refresh_token",
    "new_password",
    "old_password",
    "x-api-key",
]


def init_sentry(
    dsn: str,
    *,
    environment: str,
    release: str | None,
    traces_sample_rate: float,
    transport: Transport | None = None,
) -> bool:
    """Start reporting to Sentry when ``dsn`` is set; returns whether it did.

    Without a DSN the SDK is not initialised at all: no client, Django left unpatched, no
    network. ``transport`` replaces the HTTP transport (tests record envelopes with it).
    """
    if not dsn:
        return False
    if not 0.0 <= traces_sample_rate <= 1.0:
        raise ImproperlyConfigured(
            f"SENTRY_TRACES_SAMPLE_RATE must be between 0 and 1, got {traces_sample_rate}."
        )
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,  # None: the SDK finds one (SENTRY_RELEASE, the git commit)
        # 0 means no tracing at all (None), not "trace every request, keep none" (0.0).
        traces_sample_rate=traces_sample_rate or None,
        integrations=[
            DjangoIntegration(),
            # The defaults, spelled out: INFO and up become breadcrumbs, ERROR and up events.
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
        # send_default_pii stays unset, which means off (no user name, email or IP, no cookies):
        # sentry-sdk 2.75 deprecates passing it, and would warn at every start.
        #
        # Bodies carry passwords (register, token), private message text and amounts. Scrubbing
        # by field name cannot recognise private prose, and the request id finds the request in
        # our own logs: so "never", not "small".
        max_request_body_size="never",
        # Frame locals hold raw tokens, passwords and user rows.
        include_local_variables=False,
        event_scrubber=EventScrubber(denylist=[*_DENYLIST], recursive=True),  # it extends the list it gets
        before_send=_before_send,
        before_send_transaction=_before_send,
        transport=transport,
    )
    return True


def tag_request_id(request_id: str) -> None:
    """Tag the Sentry scope of the request being served with its id (RequestIdMiddleware).

    Sentry's WSGI integration gives each request a scope of its own, and every event the
    request sends carries its tags: errors raised or logged while it is served, and also its
    transaction, sent once the middleware has returned and ``get_request_id()`` is back to "-"
    (which is why the tag is not set in ``before_send`` from the context variable).
    """
    if sentry_sdk.get_client().is_active():
        sentry_sdk.set_tag(REQUEST_ID_TAG, request_id)


def _before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Scrub an event before it is sent (see the module docstring). If this raises, the SDK
    drops the event rather than send it unscrubbed."""
    user = event.get("user")
    if isinstance(user, dict) and user.get("id") is not None:
        event["user"] = {"id": user["id"]}
    else:
        event.pop("user", None)
    request = event.get("request")
    if isinstance(request, dict) and isinstance(request.get("query_string"), str):
        request["query_string"] = _scrub_query_string(request["query_string"])
    # `_meta` holds the SDK's annotations of what it removed, keyed by field name: no data.
    return {key: value if key == "_meta" else _scrub(value) for key, value in event.items()}


def _is_sensitive_name(name: object) -> bool:
    return isinstance(name, str) and bool(_NAME.fullmatch(name)) and bool(_SENSITIVE_NAME.search(name))


def _scrub(value: Any) -> Any:
    """``value`` with sensitive names' values filtered and email addresses masked, at any depth."""
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {
            key: FILTERED if _is_sensitive_name(key) and item not in (None, "") else _scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        # Headers and query parameters may come as [name, value] pairs.
        if len(value) == 2 and _is_sensitive_name(value[0]):
            return [value[0], FILTERED]
        return [_scrub(item) for item in value]
    return value


def _scrub_text(text: str) -> str:
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "...[cut]"
    text = _SENSITIVE_ASSIGNMENT.sub(lambda m: f"{m['name']}{m['sep']}{FILTERED}", text)
    text = _AUTH_SCHEME_CREDENTIALS.sub(lambda m: f"{m['scheme']} {FILTERED}", text)
    return _EMAIL.sub(EMAIL, text)


def _scrub_query_string(query_string: str) -> str:
    # Parsed, so that percent-encoded names and values are seen decoded.
    pairs = parse_qsl(query_string, keep_blank_values=True)
    scrubbed = [(name, FILTERED if _is_sensitive_name(name) else _scrub_text(value)) for name, value in pairs]
    return urlencode(scrubbed, safe="[]@")

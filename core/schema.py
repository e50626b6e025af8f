"""The OpenAPI schema's view of the API beyond what serializers say: error responses and tags.

drf-spectacular documents the success responses from the views' ``extend_schema``. This
schema class adds, to every operation, the error responses the operation can produce, all in
the one error shape of ``core.errors`` (the ``Error`` component), and files each operation
under its area's tag. Most statuses follow from how the view is configured (authentication,
throttling, body, path parameters, ``@idempotent``); the ones that come from business rules
(403 and 409 raised by services and views) are listed per operation in ``RULE_ERRORS``.

drf-standardized-errors was considered and not used: its schema hooks describe its own error
format (``{"type", "errors": [{"code", "detail", "attr"}]}``), not ours, and adopting it
would change every error body clients rely on.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

ERROR_COMPONENT = "Error"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error has this shape, whatever produced it (core.errors).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable, for clients to branch on: validation_error, not_found, "
                    "insufficient_funds, illegal_transition, throttled, ...",
                },
                "message": {"type": "string", "description": "For people, not for parsing."},
                "fields": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "Per-field messages (validation errors); empty otherwise.",
                },
            },
            "required": ["code", "message", "fields"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}

ERROR_DESCRIPTIONS = {
    400: "Invalid input: `validation_error` with per-field messages in `fields`, a body that is "
    "not JSON or nested too deep (`parse_error`), a cursor that was not given by the API "
    "(`invalid_cursor`), a search query that cannot be run (`invalid_query`), or a business "
    "rule (`insufficient_funds`, `withdrawal_below_minimum`, `invalid_idempotency_key`, ...).",
    401: "Missing, malformed, expired or revoked bearer token (`not_authenticated`, "
    "`invalid_token`). Public reads answer 401 too when the token sent is not valid.",
    403: "The caller may see the object but not do this (`not_bounty_owner`, `own_bounty`, "
    "`not_applicant`, `permission_denied`).",
    404: "No such object, or one the caller may not see (`not_found`).",
    409: "The object's state does not allow this now (`illegal_transition`, `bounty_not_open`, "
    "`already_applied`, `request_not_pending`, `duplicate_reference`, ...).",
    413: "The body is larger than the server accepts (`request_too_large`).",
    414: "The request line (path and query string) is longer than the HTTP server accepts "
    "(gunicorn's `limit_request_line`, 4094 bytes). Answered by the server before the API, so "
    "not in the error shape.",
    415: "The body is not `application/json` (`unsupported_media_type`).",
    422: "This Idempotency-Key was already used with a different request (`idempotency_key_reused`).",
    429: "Over the rate limit (`throttled`); retry after `Retry-After` seconds.",
    503: "The database or Redis cannot serve the request now (`database_unavailable`, "
    "`database_busy`, `query_timeout`, ...); retry after `Retry-After` seconds.",
}

# Answered by the HTTP server in front of Django (its own plain body), never by the API.
SERVER_STATUSES = {414}

RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 0},
        "required": True,
        "description": "Seconds to wait before retrying.",
    }
}
RATE_LIMIT_HEADERS = {
    name: {"schema": {"type": "integer", "minimum": 0}, "description": description}
    for name, description in (
        ("X-RateLimit-Limit", "Requests allowed per window in this endpoint's tier."),
        ("X-RateLimit-Remaining", "Requests left in the current window."),
        ("X-RateLimit-Reset", "Seconds until the window ends and the count starts again."),
    )
}
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "required": True,
            "description": 'Always `Bearer realm="api"`.',
        }
    },
    429: {**RETRY_AFTER, **RATE_LIMIT_HEADERS},
    503: RETRY_AFTER,
}
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "Present when this is the stored response of an earlier request with "
        "the same Idempotency-Key.",
    }
}

# Statuses that come from business rules inside services and views (their DomainError
# subclasses and ownership checks), which the view's configuration does not reveal. Keep in
# step with bounties/services.py, wallet/services.py and the views' own checks.
RULE_ERRORS: dict[str, set[int]] = {
    "PATCH /api/profiles/{id}": {403},
    "PATCH /api/bounties/{id}": {403, 409},
    "DELETE /api/bounties/{id}": {403, 409},
    "POST /api/bounties/{id}/complete": {403, 409},
    "POST /api/bounties/{id}/cancel": {403, 409},
    "POST /api/bounties/{id}/archive": {403, 409},
    "GET /api/bounties/{bounty_pk}/requests": {403},
    "POST /api/bounties/{bounty_pk}/requests": {403, 409},
    "POST /api/requests/{id}/accept": {403, 409},
    "POST /api/requests/{id}/reject": {403, 409},
    "POST /api/requests/{id}/withdraw": {403, 409},
    "POST /api/wallet/deposits": {409},
}

# Operations that never authenticate: TokenView skips it on POST so that a client still
# holding an expired token can log in again (register has no authentication classes at all).
UNAUTHENTICATED = {"POST /api/auth/token"}

# Areas of the API, matched in order against the path; the first match names the tag.
TAGS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/api/auth/"), "auth"),
    (re.compile(r"^/api/(me|profiles)(/|$)"), "profiles"),
    (re.compile(r"^/api/(bounties/\{[^}]+\}/)?requests(/|$)"), "applications"),
    (re.compile(r"^/api/bounties(/|$)"), "bounties"),
    (re.compile(r"^/api/wallet(/|$)"), "wallet"),
    (re.compile(r"^/api/conversations(/|$)"), "messaging"),
]


class ApiAutoSchema(AutoSchema):
    """``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``: documents error responses and area tags."""

    def get_tags(self) -> list[str]:
        for pattern, tag in TAGS:
            if pattern.match(self.path):
                return [tag]
        return super().get_tags()

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        success_headers = {
            **(RATE_LIMIT_HEADERS if self._throttled() else {}),
            **(REPLAYED_HEADER if self._is_idempotent() else {}),
        }
        for code, success in responses.items():
            if code.startswith("2") and success_headers:
                success.setdefault("headers", {}).update(success_headers)
        error = self._error_component()
        for status_code in sorted(self.error_statuses(operation)):
            failure: dict[str, Any] = {"description": ERROR_DESCRIPTIONS[status_code]}
            if status_code not in SERVER_STATUSES:
                failure["content"] = {"application/json": {"schema": error.ref}}
            if status_code in ERROR_HEADERS:
                failure["headers"] = dict(ERROR_HEADERS[status_code])
            responses.setdefault(str(status_code), failure)
        return operation

    def error_statuses(self, operation: dict[str, Any]) -> set[int]:
        """The error statuses this operation can answer, decided from the view."""
        key = f"{self.method} {self.path}"
        parameters = operation.get("parameters", [])
        has_query = any(parameter["in"] == "query" for parameter in parameters)
        has_path_ids = any(parameter["in"] == "path" for parameter in parameters)
        # @idempotent fingerprints the body, so those handlers parse it even without a serializer.
        reads_body = "requestBody" in operation or self._is_idempotent()

        # Every API operation reaches PostgreSQL (or Redis and then PostgreSQL).
        statuses = {503}
        if self.view.get_authenticators() and key not in UNAUTHENTICATED:
            statuses.add(401)
        if self._throttled():
            statuses.add(429)
        if reads_body or has_query:
            statuses.add(400)
        if has_query:
            statuses.add(414)
        if reads_body:
            # Parsing is where a body is refused for its type or its size (Django's limit is
            # checked when the body is read; a view that never reads it never answers 413).
            statuses |= {413, 415}
        if has_path_ids:
            statuses.add(404)
        if self._is_idempotent():
            statuses.add(422)
        statuses |= RULE_ERRORS.get(key, set())
        return statuses

    def _handler(self):
        action = getattr(self.view, "action", None)
        return getattr(self.view, action or self.method.lower(), None)

    def _is_idempotent(self) -> bool:
        return getattr(self._handler(), "idempotent", False)

    def _throttled(self) -> bool:
        return bool(self.view.get_throttles())

    def _error_component(self) -> ResolvedComponent:
        component = ResolvedComponent(
            name=ERROR_COMPONENT, type=ResolvedComponent.SCHEMA, object=ERROR_COMPONENT, schema=ERROR_SCHEMA
        )
        self.registry.register_on_missing(component)
        return component

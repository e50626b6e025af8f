"""The API's one error shape and the exception classes that produce it.

Every error a client sees is ``{"error": {"code": ..., "message": ..., "fields": {...}}}``:
DRF exceptions and domain errors through :func:`api_exception_handler`, and errors raised
outside DRF (unknown URLs, a bad Host header, a crash in middleware) through the Django
handlers at the bottom of this module, wired in ``bountyexpo/urls.py``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import utils as db_utils
from django.http import JsonResponse
from psycopg_pool import PoolTimeout, TooManyRequests
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from core.db import availability, replicas
from core.request_id import get_request_id

logger = logging.getLogger("bountyexpo.errors")


class DomainError(exceptions.APIException):
    """A business-rule failure with a stable ``code`` clients can branch on.

    Subclass it per kind of failure (``default_code``, ``status_code``, ``default_detail``);
    raise it from services, and the handler renders it in the error shape.
    """

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"
    default_detail = "The request cannot be processed."

    def __init__(self, message: str | None = None, *, code: str | None = None, fields: dict | None = None):
        super().__init__(detail=message, code=code)
        self.fields = fields or {}


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the one error shape."""
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _validation_fields(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return detail
    return {"non_field_errors": detail if isinstance(detail, list) else [detail]}


def too_large_message() -> str:
    return f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."


def database_failure(exc: BaseException | None) -> tuple[str, str] | None:
    """The (code, message) of a 503 for an error that means "the database cannot serve this
    now", or None. Django wraps psycopg's exceptions; the cause tells which failure it was."""
    if not isinstance(exc, db_utils.OperationalError | db_utils.InterfaceError):
        return None
    cause = exc.__cause__
    if replicas.failed_in_this_request():  # a replica's failure: the request runs again on the primary
        return "database_unavailable", "A read replica is unavailable; retry shortly."
    if isinstance(cause, PoolTimeout | TooManyRequests):
        availability.checkout_failed()
        return "database_busy", "Every database connection is busy; retry shortly."
    if isinstance(cause, psycopg.errors.QueryCanceled):
        return "query_timeout", "The database took too long to answer; retry shortly."
    if isinstance(cause, psycopg.errors.TransactionRollback):
        return "database_busy", "The database could not serialise this change; retry shortly."
    if not isinstance(cause, availability.DatabaseUnavailable):
        availability.connection_lost()  # lost or refused: find out whether all of them are
    return "database_unavailable", "The database is unavailable; retry shortly."


def _unavailable(code: str, message: str, response_class=Response):
    response = response_class(error_body(code, message), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = str(settings.DATABASE_RETRY_SECONDS)
    response.error_code = code  # the metrics' error_type (core.instrumentation)
    return response


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler: every exception becomes the one error shape.

    DRF's own handler runs first so that its headers survive (``WWW-Authenticate`` on 401,
    ``Retry-After`` on 429, ``Allow`` on 405) and the transaction is marked for rollback.
    Database outages become 503 with ``Retry-After``; an oversized body 413.
    """
    response = exception_handler(exc, context)
    if response is None and (failure := database_failure(exc)):
        logger.warning("Database failure answered with 503: %s", exc)
        set_rollback()
        return _unavailable(*failure)
    if response is None and isinstance(exc, RequestDataTooBig):
        return Response(error_body("request_too_large", too_large_message()), status=413)
    if response is None and isinstance(exc, SuspiciousOperation):
        return Response(error_body("bad_request", "Bad request."), status=status.HTTP_400_BAD_REQUEST)
    if response is None:
        request = context.get("request")
        logger.exception(
            "Unhandled exception in %s %s",
            getattr(request, "method", "?"),
            getattr(request, "path", "?"),
        )
        set_rollback()
        return Response(
            error_body("server_error", f"Internal server error (request id {get_request_id()})."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("validation_error", "Invalid input.", _validation_fields(exc.detail))
        return response

    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        message = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        response.data = error_body(code, str(message), getattr(exc, "fields", None))
        return response

    # Django's Http404 and PermissionDenied, converted by DRF's handler.
    default = {404: ("not_found", "Not found."), 403: ("permission_denied", "Permission denied.")}
    code, message = default.get(response.status_code, ("error", "Request failed."))
    response.data = error_body(code, message)
    return response


def _json_error(status_code: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse(error_body(code, message), status=status_code)
    response.error_code = code  # the metrics' error_type (core.instrumentation)
    return response


def bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return _json_error(413, "request_too_large", too_large_message())
    return _json_error(400, "bad_request", "Bad request.")


def permission_denied(request, exception=None):
    return _json_error(403, "permission_denied", "Permission denied.")


def page_not_found(request, exception=None):
    return _json_error(404, "not_found", "Not found.")


def server_error(request):
    # Django calls this while handling the exception, so it is still at hand: a database
    # outage outside DRF (the admin, a middleware) is a 503 too.
    if failure := database_failure(sys.exc_info()[1]):
        return _unavailable(*failure, response_class=JsonResponse)
    return _json_error(500, "server_error", f"Internal server error (request id {get_request_id()}).")

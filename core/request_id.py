"""The request being served and its id, readable from anywhere (logs, error responses, the
cache's read-your-writes marks)."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_current: ContextVar[str] = ContextVar("request_id", default="-")
_current_request: ContextVar[object | None] = ContextVar("current_request", default=None)
# A client or proxy may send its own id; accept it only if it is short and log-safe.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def get_request_id() -> str:
    """Return the current request's id, or "-" outside a request."""
    return _current.get()


def new_request_id(incoming: str | None) -> str:
    """Return the incoming id when it is acceptable, otherwise a fresh one."""
    if incoming and _ACCEPTABLE.match(incoming):
        return incoming
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


def get_current_request():
    """The HttpRequest being served in this thread, or None outside a request."""
    return _current_request.get()


def bind_request_id(request_id: str, request=None):
    """Make ``request_id`` (and ``request``) current; returns the token to reset them with."""
    return _current.set(request_id), _current_request.set(request)


def reset_request_id(token) -> None:
    id_token, request_token = token
    _current.reset(id_token)
    _current_request.reset(request_token)

"""The id of the request being served, readable from anywhere (logs, error responses)."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_current: ContextVar[str] = ContextVar("request_id", default="-")
# A client or proxy may send its own id; accept it only if it is short and log-safe.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def get_request_id() -> str:
    """Return the current request's id, or "-" outside a request."""
    return _current.get()


def new_request_id(incoming: str | None) -> str:
    """Return the incoming id when it is acceptable, otherwise a fresh one."""
    if incoming and _ACCEPTABLE.match(incoming):
        return incoming
    return uuid.uuid4().hex


def bind_request_id(request_id: str):
    """Make ``request_id`` current; returns the token to reset it with."""
    return _current.set(request_id)


def reset_request_id(token) -> None:
    _current.reset(token)

"""The accounts domain's errors: each a stable ``code`` and HTTP status in the API's error shape
(core.errors)."""

from __future__ import annotations

from core.errors import DomainError


class UsernameTaken(DomainError):
    default_code = "username_taken"
    default_detail = "This username is already taken."


class InvalidCredentials(DomainError):
    default_code = "invalid_credentials"
    default_detail = "Unable to log in with the provided username and password."

"""DRF authentication by ``Authorization: Bearer <token>``."""

from __future__ import annotations

from rest_framework import HTTP_HEADER_ENCODING
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.selectors import user_for_token

KEYWORD = b"bearer"


def bearer_token(request) -> str | None:
    """Return the raw token of a well-formed Bearer header, None when there is no such header."""
    # DRF's get_authorization_header, read from META (the hit path's front has no .headers).
    header = request.META.get("HTTP_AUTHORIZATION", b"")
    if isinstance(header, str):
        header = header.encode(HTTP_HEADER_ENCODING)
    parts = header.split()
    if not parts or parts[0].lower() != KEYWORD:
        return None
    if len(parts) != 2:
        raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed("Malformed token.") from None


class BearerTokenAuthentication(BaseAuthentication):
    """Opaque tokens whose owner is cached in Redis (see ``user_for_token``)."""

    def authenticate(self, request):
        raw = bearer_token(request)
        if raw is None:
            return None
        user = user_for_token(raw_token=raw)
        if user is None:
            raise AuthenticationFailed("Invalid or expired token.", code="invalid_token")
        return user, raw

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
